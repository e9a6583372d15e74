/** What became of the last action on a settings section, said to the user. */
export interface Outcome {
  ok: boolean;
  text: string;
}

/** Success as a status message, failure as an alert (announced at once). */
export function OutcomeMessage({ outcome }: { outcome: Outcome | null }) {
  if (!outcome) return null;
  return outcome.ok ? <p role="status">{outcome.text}</p> : <p role="alert">{outcome.text}</p>;
}
