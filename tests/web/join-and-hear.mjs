// Chromium joins a conference anonymously by link and exchanges audio.
// Environment: BASE_URL (http://127.0.0.1:PORT), CONF (conference id),
// ARTIFACTS (directory for screenshots), STAY_SECS (how long to stay in).
// Prints one JSON line `RESULT {...}` with what getStats saw.
import { chromium } from 'playwright-core';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const base = process.env.BASE_URL;
const conf = process.env.CONF;
const artifacts = process.env.ARTIFACTS;
const stay = Number(process.env.STAY_SECS || '8');
mkdirSync(artifacts, { recursive: true });
const profile = mkdtempSync(join(tmpdir(), 'confgate-chromium-'));

const ctx = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: [
    '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
    '--autoplay-policy=no-user-gesture-required',
    // getUserMedia needs a secure context; the test serves plain HTTP on a
    // namespace address (a real deployment serves HTTPS).
    `--unsafely-treat-insecure-origin-as-secure=${base}`,
  ],
  viewport: { width: 900, height: 700 },
});
const result = {};
try {
  const page = await ctx.newPage();
  page.on('console', (m) => console.error(`[page] ${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => console.error(`[page] error: ${e.message}`));

  await page.goto(`${base}/`);
  await page.waitForSelector('#view-main:not([hidden])');
  await page.screenshot({ path: join(artifacts, 'main-page.png') });
  // A malformed frame (unknown member) closes that session with 1008.
  result.badFrame = await page.evaluate(() => new Promise((resolve) => {
    const ws = new WebSocket(`ws://${location.host}/ws`);
    ws.onopen = () => ws.send('{"v":1,"type":"hello","bogus":1}');
    ws.onclose = (e) => resolve({ code: e.code, reason: e.reason });
    setTimeout(() => resolve({ code: -1 }), 5000);
  }));

  await page.goto(`${base}/c/${conf}?name=Guest&lang=en`);
  await page.waitForSelector('#view-join:not([hidden])');
  result.prefilled = await page.inputValue('#join-name');
  await page.screenshot({ path: join(artifacts, 'join-screen.png') });

  await page.goto(`${base}/c/${conf}?name=Guest&autojoin=1`);
  await page.waitForSelector('#view-room:not([hidden])', { timeout: 15000 });
  await page.waitForFunction(() => window.confgate.pc && ['connected', 'completed'].includes(window.confgate.pc.iceConnectionState), null, { timeout: 15000 });
  const stats = () => page.evaluate(async () => {
    const out = { inbound: 0, outbound: 0, packetsIn: 0, pair: false, local: null, remote: null, ice: window.confgate.pc.iceConnectionState, conn: window.confgate.pc.connectionState };
    const all = await window.confgate.pc.getStats();
    for (const s of all.values()) {
      if (s.type === 'inbound-rtp' && s.kind === 'audio') { out.inbound += s.bytesReceived; out.packetsIn += s.packetsReceived; }
      if (s.type === 'outbound-rtp' && s.kind === 'audio') out.outbound += s.bytesSent;
      // A pair whose check was answered has succeeded: Chromium reports it
      // `in-progress` again while each later consent check is in flight.
      if (s.type === 'candidate-pair' && (s.state === 'succeeded' || s.responsesReceived > 0)) {
        out.pair = true;
        const l = all.get(s.localCandidateId);
        const r = all.get(s.remoteCandidateId);
        out.local = l ? `${l.address}:${l.port} ${l.candidateType}` : null;
        out.remote = r ? `${r.address}:${r.port} ${r.candidateType}` : null;
      }
    }
    return out;
  });
  await page.waitForTimeout(1500);
  result.first = await stats();
  await page.waitForTimeout(3000);
  result.second = await stats();
  result.participants = await page.$$eval('#participants li', (els) => els.map((e) => e.textContent));
  await page.screenshot({ path: join(artifacts, 'in-conference.png') });
  await page.waitForTimeout(Math.max(0, stay * 1000 - 4500));
  await page.click('#btn-leave');
  await page.waitForSelector('#view-ended:not([hidden])');
  result.left = true;
} catch (e) {
  result.error = String(e && e.stack || e);
} finally {
  console.log(`RESULT ${JSON.stringify(result)}`);
  await ctx.close();
  rmSync(profile, { recursive: true, force: true });
}
