// Reads the variants of an HLS master playlist (RESOLUTION, FRAME-RATE, CODECS), for the
// quality menu of browsers that play HLS natively (hls.js parses its own).

export interface Variant {
  label: string;
  uri: string;
}

export function parseMaster(text: string, base: string): Variant[] {
  const lines = text.split(/\r?\n/);
  const variants: Variant[] = [];
  lines.forEach((line, i) => {
    if (!line.startsWith('#EXT-X-STREAM-INF:')) return;
    const uri = lines[i + 1]?.trim();
    if (!uri || uri.startsWith('#')) return;
    const height = line.match(/RESOLUTION=\d+x(\d+)/)?.[1];
    const rate = line.match(/FRAME-RATE=([\d.]+)/)?.[1];
    variants.push({ label: qualityLabel(height ? Number(height) : 0, rate ? Number(rate) : 0), uri: new URL(uri, base).href });
  });
  return variants;
}

/** "720p60", "360p", or "source" when the playlist says nothing. */
export function qualityLabel(height: number, frameRate: number): string {
  if (!height) return 'source';
  return `${height}p${frameRate > 30.5 ? Math.round(frameRate) : ''}`;
}
