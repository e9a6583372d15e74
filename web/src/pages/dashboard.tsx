import { useState } from 'preact/hooks';
import { Bans } from '../dashboard/bans';
import { ChatSettings } from '../dashboard/chat-settings';
import { Earnings } from '../dashboard/earnings';
import { LiveStatus, useLiveStream } from '../dashboard/live-status';
import { ModerationLog } from '../dashboard/moderation-log';
import { Moderators } from '../dashboard/moderators';
import { StreamInfo } from '../dashboard/stream-info';
import { StreamKey } from '../dashboard/stream-key';
import { Webhooks } from '../dashboard/webhooks';

export function SignInFirst({ what }: { what: string }) {
  return (
    <section>
      <h1>{what}</h1>
      <p>
        <a href="/login">Log in</a> to see your {what.toLowerCase()}.
      </p>
    </section>
  );
}

/** The creator's dashboard (`user` is the signed-in user's id, which is also their channel's). */
export function Dashboard({ user }: { user: string | null }) {
  if (!user) return <SignInFirst what="Dashboard" />;
  return <CreatorDashboard channelId={user} />;
}

function CreatorDashboard({ channelId }: { channelId: string }) {
  const live = useLiveStream();
  // Every moderation action adds a log entry: the log reloads after each.
  const [logVersion, setLogVersion] = useState(0);
  const logChanged = () => setLogVersion((n) => n + 1);
  return (
    <div class="dashboard">
      <h1>Dashboard</h1>
      <LiveStatus channelId={channelId} live={live} />
      {live.stream !== undefined && <StreamInfo stream={live.stream} onChange={live.refresh} />}
      <StreamKey channelId={channelId} />
      <section aria-labelledby="moderation-heading" class="dash-section">
        <h2 id="moderation-heading">Chat moderation</h2>
        <ChatSettings channelId={channelId} onChange={logChanged} />
        <Moderators channelId={channelId} onChange={logChanged} />
        <Bans channelId={channelId} onChange={logChanged} />
        <ModerationLog channelId={channelId} version={logVersion} />
      </section>
      <Earnings channelId={channelId} />
      <Webhooks channelId={channelId} />
    </div>
  );
}
