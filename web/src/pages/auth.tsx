import { useState } from 'preact/hooks';
import { ApiError, logIn, signUp } from '../api';
import { navigate } from '../router';

export function AuthForm({ mode }: { mode: 'login' | 'signup' }) {
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const signup = mode === 'signup';
  const submit = async (event: Event) => {
    event.preventDefault();
    const form = new FormData(event.currentTarget as HTMLFormElement);
    const field = (name: string) => String(form.get(name) ?? '');
    setBusy(true);
    setError(null);
    try {
      if (signup) await signUp(field('username'), field('email'), field('password'));
      else await logIn(field('login'), field('password'));
      navigate('/');
    } catch (e) {
      setError(e instanceof ApiError ? e.message : 'The server could not be reached.');
    } finally {
      setBusy(false);
    }
  };
  return (
    <section class="narrow">
      <h1>{signup ? 'Sign up' : 'Log in'}</h1>
      <form onSubmit={submit} aria-describedby={error ? 'auth-error' : undefined}>
        {signup ? (
          <>
            <label for="username">Username</label>
            <input id="username" name="username" autocomplete="username" required minLength={3} maxLength={25} pattern="[A-Za-z0-9_]+" />
            <label for="email">Email</label>
            <input id="email" name="email" type="email" autocomplete="email" required />
          </>
        ) : (
          <>
            <label for="login">Username or email</label>
            <input id="login" name="login" autocomplete="username" required />
          </>
        )}
        <label for="password">Password</label>
        <input
          id="password"
          name="password"
          type="password"
          autocomplete={signup ? 'new-password' : 'current-password'}
          required
          minLength={8}
          maxLength={128}
        />
        {error && (
          <p id="auth-error" role="alert" class="error">
            {error}
          </p>
        )}
        <button type="submit" disabled={busy}>
          {signup ? 'Create account' : 'Log in'}
        </button>
      </form>
      <p>
        {signup ? (
          <>
            Already have an account? <a href="/login">Log in</a>
          </>
        ) : (
          <>
            New here? <a href="/signup">Sign up</a>
          </>
        )}
      </p>
    </section>
  );
}
