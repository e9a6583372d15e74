import { useEffect, useReducer, useRef, useState } from 'preact/hooks';
import { call } from '../api';
import { connectChat, type ChatConnection, type ConnectionState } from './connection';
import type { ChatSettings, ClientFrame } from './protocol';
import { chatReducer, initialChat, type ChatState } from './state';

export interface Chat {
  state: ChatState;
  connection: ConnectionState;
  send: (frame: ClientFrame) => boolean;
}

/** A channel's chat room, live: `authenticate` joins as the signed-in user (if any). */
export function useChat(channelId: string, authenticate: boolean): Chat {
  const [state, dispatch] = useReducer(chatReducer, channelId, initialChat);
  const [connection, setConnection] = useState<ConnectionState>('connecting');
  const socket = useRef<ChatConnection | null>(null);

  useEffect(() => {
    const chat = connectChat(channelId, { authenticate }, dispatch, setConnection);
    socket.current = chat;
    if (authenticate) {
      call<ChatSettings>('GET', `/channels/${channelId}/chat/settings`)
        .then((settings) => dispatch({ type: 'settings_loaded', settings }))
        .catch(() => {});
    }
    return () => {
      chat.close();
      socket.current = null;
    };
  }, [channelId, authenticate]);

  // A timeout ends by itself: sending comes back when it runs out.
  useEffect(() => {
    if (state.mutedUntil === null) return;
    const timer = setTimeout(() => dispatch({ type: 'unmute' }), Math.max(0, state.mutedUntil - Date.now()));
    return () => clearTimeout(timer);
  }, [state.mutedUntil]);

  return { state, connection, send: (frame) => socket.current?.send(frame) ?? false };
}

/** The current time; the component renders again every second while `active`. */
export function useNow(active: boolean): number {
  const [, setTicks] = useState(0);
  useEffect(() => {
    if (!active) return;
    const timer = setInterval(() => setTicks((n) => n + 1), 1000);
    return () => clearInterval(timer);
  }, [active]);
  return Date.now();
}
