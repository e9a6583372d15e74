// What viewers tipped the channel: totals per currency and the tips, newest first.
import { useEffect, useState } from 'preact/hooks';
import { formatMoney } from '../money';
import { usePaged } from '../paged';
import { paymentsApi, usePaymentsConfig, type Earnings as Totals, type Tip } from '../payments';
import { Alert, DateTime, ListState, LoadMore, UserName } from './ui';

const PAGE_SIZE = 20;

/** Shown when this server takes tips, or took some before it stopped. */
export function Earnings({ channelId }: { channelId: string }) {
  const config = usePaymentsConfig();
  const [totals, setTotals] = useState<Totals[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    paymentsApi.earnings().then(setTotals, setError);
  }, [channelId]);
  if (!config?.enabled && !totals?.length) return null;
  return (
    <section aria-labelledby="earnings-heading" class="dash-section">
      <h2 id="earnings-heading">Earnings</h2>
      <Alert error={error} context="Could not load your earnings" />
      {totals && totals.length === 0 && <p>No tips yet. Viewers can tip you from your channel page.</p>}
      {totals && totals.length > 0 && (
        <table class="earnings">
          <caption class="visually-hidden">Tips per currency</caption>
          <thead>
            <tr>
              <th scope="col">Currency</th>
              <th scope="col">Tips</th>
              <th scope="col">Paid</th>
              <th scope="col">Refunded</th>
              <th scope="col">Net</th>
            </tr>
          </thead>
          <tbody>
            {totals.map((row) => (
              <tr key={row.currency}>
                <th scope="row">{row.currency.toUpperCase()}</th>
                <td>{row.tips}</td>
                <td>{formatMoney(row.succeeded, row.currency)}</td>
                <td>{formatMoney(row.refunded, row.currency)}</td>
                <td>{formatMoney(row.net, row.currency)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <ReceivedTips channelId={channelId} />
    </section>
  );
}

function ReceivedTips({ channelId }: { channelId: string }) {
  const list = usePaged(paymentsApi.received(PAGE_SIZE), channelId);
  return (
    <section aria-labelledby="tips-heading" class="dash-subsection">
      <h3 id="tips-heading">Tips received</h3>
      <ListState list={list} empty="No tips received yet." what="the tips" />
      {list.items && list.items.length > 0 && (
        <ol class="dash-list log" aria-label="Tips received">
          {list.items.map((tip) => (
            <TipEntry key={tip.id} tip={tip} />
          ))}
        </ol>
      )}
      <LoadMore list={list} />
    </section>
  );
}

function TipEntry({ tip }: { tip: Tip }) {
  const refunded = tip.refunded_amount > 0 && (
    <>
      {' '}
      · {tip.status === 'refunded' ? 'refunded' : `${formatMoney(tip.refunded_amount, tip.currency)} refunded`}
    </>
  );
  return (
    <li>
      <DateTime value={tip.created_at} /> · <UserName user={tip.sender} /> tipped <strong>{formatMoney(tip.amount, tip.currency)}</strong>
      {refunded}
      {tip.message && <span class="muted"> — “{tip.message}”</span>}
    </li>
  );
}
