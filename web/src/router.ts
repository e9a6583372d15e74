// A history-API router: the server answers every client route with the same page.
import { useEffect, useState } from 'preact/hooks';

export function navigate(path: string) {
  history.pushState(null, '', path);
  dispatchEvent(new PopStateEvent('popstate'));
}

export function usePath(): string {
  const [path, setPath] = useState(location.pathname);
  useEffect(() => {
    const update = () => setPath(location.pathname);
    addEventListener('popstate', update);
    return () => removeEventListener('popstate', update);
  }, []);
  return path;
}

/** The paths the app renders (the server answers them with the app's page). */
const CLIENT_ROUTE = /^\/(?:|login|signup|dashboard|settings|c\/[^/]+|videos\/[^/]+|clips\/[^/]+|embed\/[^/]+|popout\/[^/]+|overlay\/[^/]+)$/;

/** Clicks on links to client routes become client navigations (modifier clicks keep their meaning). */
export function interceptLinks(root: HTMLElement) {
  root.addEventListener('click', (event) => {
    const link = (event.target as Element).closest?.('a');
    if (
      !link ||
      link.origin !== location.origin ||
      !CLIENT_ROUTE.test(link.pathname) ||
      link.target ||
      event.button !== 0 ||
      event.metaKey ||
      event.ctrlKey ||
      event.shiftKey ||
      event.altKey
    ) {
      return;
    }
    event.preventDefault();
    navigate(link.pathname + link.search);
  });
}
