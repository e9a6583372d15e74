import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import './style.css';
import { logOut, onSessionChange, restoreSession, signedInAs } from './api';
import { interceptLinks, navigate, usePath } from './router';
import { Home } from './pages/home';
import { AuthForm } from './pages/auth';
import { Channel } from './pages/channel';
import { Popout, Overlay } from './pages/chat';
import { Embed } from './pages/embed';
import { Dashboard } from './pages/dashboard';
import { Settings } from './pages/settings';
import { Video } from './pages/video';
import { ClipPage } from './pages/clip';
import { NotificationsMenu } from './notifications/menu';
import { forgetPushOnLogout } from './notifications/push';

function useSignedIn(): string | null {
  const [user, setUser] = useState(signedInAs());
  useEffect(() => onSessionChange(() => setUser(signedInAs())), []);
  return user;
}

function Page({ path, user }: { path: string; user: string | null }) {
  const channel = path.match(/^\/c\/([^/]+)\/?$/);
  if (channel) return <Channel idOrName={decodeURIComponent(channel[1])} user={user} />;
  const embed = path.match(/^\/embed\/([^/]+)\/?$/);
  if (embed) return <Embed idOrName={decodeURIComponent(embed[1])} />;
  const popout = path.match(/^\/popout\/([^/]+)\/?$/);
  if (popout) return <Popout idOrName={decodeURIComponent(popout[1])} user={user} />;
  const overlay = path.match(/^\/overlay\/([^/]+)\/?$/);
  if (overlay) return <Overlay idOrName={decodeURIComponent(overlay[1])} />;
  const video = path.match(/^\/videos\/([^/]+)\/?$/);
  if (video) return <Video id={decodeURIComponent(video[1])} user={user} />;
  const clip = path.match(/^\/clips\/([^/]+)\/?$/);
  if (clip) return <ClipPage id={decodeURIComponent(clip[1])} user={user} />;
  switch (path) {
    case '/':
      return <Home />;
    case '/login':
      return <AuthForm mode="login" />;
    case '/signup':
      return <AuthForm mode="signup" />;
    case '/dashboard':
      return <Dashboard user={user} />;
    case '/settings':
      return <Settings user={user} />;
    default:
      return (
        <section>
          <h1>Page not found</h1>
          <p>
            <a href="/">Back to the live channels</a>
          </p>
        </section>
      );
  }
}

function App() {
  const path = usePath();
  const user = useSignedIn();
  useEffect(() => {
    const heading = document.querySelector('main h1');
    document.title = heading?.textContent ? `${heading.textContent} · OnAir` : 'OnAir';
  });
  // Pages for other windows, frames and OBS: no site header.
  const bare = path.match(/^\/(embed|popout|overlay)\//);
  if (bare) {
    return (
      <main class={bare[1]}>
        <Page path={path} user={user} />
      </main>
    );
  }
  return (
    <>
      <a class="skip" href="#content">
        Skip to content
      </a>
      <header class="top">
        <nav aria-label="Main">
          <a class="brand" href="/">
            OnAir
          </a>
          {user ? (
            <>
              <NotificationsMenu user={user} />
              <a href="/dashboard">Dashboard</a>
              <a href="/settings">Settings</a>
              <button type="button" onClick={() => forgetPushOnLogout().then(logOut).then(() => navigate('/'))}>
                Log out
              </button>
            </>
          ) : (
            <>
              <a href="/login">Log in</a>
              <a href="/signup">Sign up</a>
            </>
          )}
        </nav>
      </header>
      <main id="content" tabIndex={-1}>
        <Page path={path} user={user} />
      </main>
    </>
  );
}

const root = document.getElementById('app')!;
interceptLinks(root);
// The first render already knows who is signed in (one refresh from the httpOnly cookie),
// so no page flashes its signed-out state or loads data without the session.
restoreSession().finally(() => render(<App />, root));
