// The chat benchmark's baseline: the least a room-broadcast WebSocket server can be on
// Node's `ws`, speaking just enough of OnAir's chat protocol for the benchmark's load
// generator (bench/src/chat/client.rs). Not a chat server: no persistence, history,
// moderation, rate limits, pings or slow-consumer handling.
//
// HTTP:      GET /healthz; POST /api/auth/signup {username, email, password}
//            → {user_id, access_token} (an opaque token, kept in memory).
// WebSocket: /api/channels/{room}/chat[?access_token=…] → a `welcome` frame; a
//            `{"type":"message","text":…}` from a signed-up socket is broadcast to every
//            socket in the room, the sender's too, in OnAir's `message` frame shape
//            (serialized once per message; `ws` frames it once per socket).
// stdin:     `heap` → the V8 heap in use plus memory outside it (buffers), in bytes, as
//            the benchmark's `node` mode answers with the allocator's heap in use; the
//            process exits when stdin closes.
//
// PORT (default 8090) and HOST (default 127.0.0.1) from the environment.
'use strict';

const http = require('node:http');
const crypto = require('node:crypto');
const readline = require('node:readline');
const { WebSocketServer } = require('ws');

const MAX_MESSAGE = 64 * 1024;
const CHAT_PATH = /^\/api\/channels\/([^/]+)\/chat$/;

/** token → user, as OnAir's `message` frames carry it */
const users = new Map();
/** room id → Set of sockets */
const rooms = new Map();

function json(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

function signup(req, res) {
  let body = '';
  req.setEncoding('utf8');
  req.on('data', (chunk) => { body += chunk; });
  req.on('end', () => {
    let username;
    try {
      ({ username } = JSON.parse(body));
    } catch {
      return json(res, 400, { code: 'invalid_json', message: 'send JSON' });
    }
    const user = { id: crypto.randomUUID(), username: String(username), display_name: null };
    const token = crypto.randomBytes(24).toString('base64url');
    users.set(token, user);
    json(res, 201, { user_id: user.id, access_token: token });
  });
}

const server = http.createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/healthz') return json(res, 200, { status: 'ok' });
  if (req.method === 'POST' && req.url === '/api/auth/signup') return signup(req, res);
  json(res, 404, { code: 'not_found', message: 'not found' });
});

const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_MESSAGE });

server.on('upgrade', (req, socket, head) => {
  const url = new URL(req.url, 'http://baseline');
  const path = CHAT_PATH.exec(url.pathname);
  const token = url.searchParams.get('access_token');
  const user = token === null ? null : users.get(token);
  if (!path || user === undefined) {
    socket.end('HTTP/1.1 ' + (path ? '401 Unauthorized' : '404 Not Found') + '\r\n\r\n');
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => join(ws, path[1], user));
});

function join(ws, room, user) {
  let members = rooms.get(room);
  if (!members) rooms.set(room, (members = new Set()));
  members.add(ws);
  ws.send(JSON.stringify({
    type: 'welcome', room, user, role: user && 'viewer', timed_out_until: null, history: 0,
  }));
  ws.on('message', (data, isBinary) => {
    let frame;
    try {
      frame = isBinary ? null : JSON.parse(data);
    } catch {
      frame = null;
    }
    if (!frame || frame.type !== 'message' || typeof frame.text !== 'string') {
      return ws.send(JSON.stringify({ type: 'error', code: 'invalid_frame', message: 'unsupported frame' }));
    }
    if (!user) {
      return ws.send(JSON.stringify({ type: 'error', code: 'login_required', message: 'log in to chat' }));
    }
    const out = JSON.stringify({
      type: 'message', id: crypto.randomUUID(), room, user, text: frame.text, sent_at: new Date().toISOString(),
    });
    for (const member of members) member.send(out);
  });
  ws.on('close', () => {
    members.delete(ws);
    if (members.size === 0) rooms.delete(room);
  });
  ws.on('error', () => ws.terminate());
}

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  if (line === 'heap') {
    const { heapUsed, external } = process.memoryUsage();
    process.stdout.write(`${heapUsed + external}\n`);
  }
}).on('close', () => process.exit(0));

server.listen(Number(process.env.PORT || 8090), process.env.HOST || '127.0.0.1');
