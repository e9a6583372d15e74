import type { RefObject } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import type Hls from 'hls.js';
import { heartbeat } from './heartbeat';
import { parseMaster, qualityLabel } from './playlist';

const HEARTBEAT_MS = 15_000;
/** A playing live video whose clock stands still this long is reloaded. */
const STALL_MS = 6_000;

interface Quality {
  label: string;
  /** hls.js level index, or the variant URL for native HLS. */
  key: string;
}

/**
 * Plays HLS: a live broadcast (`streamId`: retried across reconnects, watched for stalls,
 * counted by heartbeats) or a recording (`src`). hls.js where the browser lacks native
 * HLS, loaded only here. `videoRef` lets the page read the video (e.g. its clock).
 */
export function Player(
  props: ({ streamId: string } | { src: string }) & { title: string; videoRef?: RefObject<HTMLVideoElement | null> },
) {
  const streamId = 'streamId' in props ? props.streamId : null;
  const own = useRef<HTMLVideoElement>(null);
  const video = props.videoRef ?? own;
  const hls = useRef<Hls | null>(null);
  const [qualities, setQualities] = useState<Quality[]>([]);
  const [choice, setChoice] = useState('auto');
  const [active, setActive] = useState<string | null>(null);
  const [problem, setProblem] = useState<string | null>(null);
  const master = streamId ? `/live/${streamId}/master.m3u8` : (props as { src: string }).src;

  useEffect(() => {
    const element = video.current!;
    let disposed = false;
    // A recording whose source changes (the processed replay replaced the recording as
    // streamed) goes on from where it was.
    const resumeAt = streamId ? 0 : element.currentTime;
    const wasPlaying = !element.paused;
    if (resumeAt > 0) {
      element.addEventListener(
        'loadedmetadata',
        () => {
          if (disposed) return;
          element.currentTime = resumeAt;
          if (wasPlaying) element.play().catch(() => {});
        },
        { once: true },
      );
    }
    if (element.canPlayType('application/vnd.apple.mpegurl')) {
      element.src = master;
      // The playlist may not exist yet, or the publisher is reconnecting: try again.
      // (Listeners of an earlier source stay on the element: they check `disposed`.)
      element.addEventListener('error', () => {
        if (disposed) return;
        if (!streamId) {
          setProblem('This video could not be played.');
          return;
        }
        setProblem('The stream was interrupted; reconnecting…');
        setTimeout(() => {
          if (disposed) return;
          element.src = element.currentSrc || master;
          element.play().catch(() => {});
        }, 3000);
      });
      element.addEventListener('playing', () => setProblem(null));
      // Read once the master playlist exists, which is when the video has loaded it.
      element.addEventListener(
        'loadedmetadata',
        () =>
          fetch(master)
            .then((r) => r.text())
            .then((text) => {
              if (!disposed) setQualities(parseMaster(text, location.href).map((v) => ({ label: v.label, key: v.uri })));
            })
            .catch(() => {}),
        { once: true },
      );
    } else {
      import('hls.js').then(({ default: HlsJs }) => {
        if (disposed) return;
        if (!HlsJs.isSupported()) {
          setProblem('This browser cannot play live video.');
          return;
        }
        // Live: LL-HLS (parts, blocking playlist reloads), about a second behind the
        // encoder instead of three segments.
        const live = streamId !== null;
        const player = new HlsJs({ liveDurationInfinity: live, lowLatencyMode: live });
        hls.current = player;
        player.on(HlsJs.Events.MANIFEST_PARSED, (_e, data) => {
          setQualities(data.levels.map((l, i) => ({ label: qualityLabel(l.height, l.frameRate), key: String(i) })));
          setProblem(null);
        });
        player.on(HlsJs.Events.LEVEL_SWITCHED, (_e, data) => {
          const level = player.levels[data.level];
          if (level) setActive(qualityLabel(level.height, level.frameRate));
        });
        player.on(HlsJs.Events.ERROR, (_e, data) => {
          if (!data.fatal) return;
          if (!streamId) {
            setProblem('This video could not be played.');
            return;
          }
          // The publisher may be reconnecting: try again shortly rather than give up.
          setProblem('The stream was interrupted; reconnecting…');
          setTimeout(() => !disposed && player.loadSource(master), 3000);
        });
        player.loadSource(master);
        player.attachMedia(element);
      });
    }
    if (!streamId) {
      return () => {
        disposed = true;
        hls.current?.destroy();
        hls.current = null;
      };
    }
    // A live video whose clock stands still although nobody paused it (the encoder
    // reconnected and the browser ended playback at the break, or a stall it does not
    // leave; hls.js nudges the clock by tenths while stalled, which is not progress)
    // loads the broadcast again. Browsers pause on their own only when the media ends.
    let userPaused = false;
    let progressAt = element.currentTime;
    let stillSince = Date.now();
    const onPause = () => {
      userPaused = !element.ended;
    };
    const onPlay = () => {
      userPaused = false;
    };
    element.addEventListener('pause', onPause);
    element.addEventListener('play', onPlay);
    const watchdog = setInterval(() => {
      const now = element.currentTime;
      if (userPaused || now > progressAt + 0.5 || now < progressAt) {
        progressAt = now;
        stillSince = Date.now();
      } else if (element.ended || Date.now() - stillSince > STALL_MS) {
        stillSince = Date.now();
        if (hls.current) hls.current.loadSource(master);
        else element.src = element.currentSrc || master;
        element.play().catch(() => {});
      }
    }, 1_000);
    const beat = setInterval(() => {
      if (!element.paused && !element.ended) heartbeat(streamId).catch(() => {});
    }, HEARTBEAT_MS);
    const first = () => heartbeat(streamId).catch(() => {});
    element.addEventListener('playing', first, { once: true });
    return () => {
      disposed = true;
      clearInterval(beat);
      clearInterval(watchdog);
      element.removeEventListener('pause', onPause);
      element.removeEventListener('play', onPlay);
      element.removeEventListener('playing', first);
      hls.current?.destroy();
      hls.current = null;
    };
  }, [master, streamId]);

  const choose = (key: string) => {
    setChoice(key);
    const player = hls.current;
    if (player) {
      player.currentLevel = key === 'auto' ? -1 : Number(key);
    } else if (video.current) {
      video.current.src = key === 'auto' ? master : key;
      setActive(key === 'auto' ? null : qualities.find((q) => q.key === key)?.label ?? null);
      video.current.play().catch(() => {});
    }
  };

  return (
    <div class="player">
      <video
        ref={video}
        controls
        autoplay={streamId !== null}
        muted={streamId !== null}
        playsInline
        aria-label={`${streamId ? 'Live video' : 'Video'}: ${props.title}`}
      />
      {problem && <p role="status">{problem}</p>}
      <label for="quality">Quality</label>
      <select id="quality" value={choice} onChange={(e) => choose((e.currentTarget as HTMLSelectElement).value)}>
        <option value="auto">{`Auto${choice === 'auto' && active ? ` (${active})` : ''}`}</option>
        {qualities.map((q) => (
          <option key={q.key} value={q.key}>
            {q.label}
          </option>
        ))}
      </select>
      {active && <span class="active-quality">Playing {active}</span>}
    </div>
  );
}
