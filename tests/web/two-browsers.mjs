// Two browsers in one conference, both with camera and microphone (fake
// devices): "alice" logs in on the main page with a WS account and joins;
// a guest joins anonymously by link (/c/<id>?name=Guest&autojoin=1&cam=1).
// Each must receive the other's audio and video: getStats on both sides,
// sampled twice, must show audio energy and decoded video frames growing.
// Environment: BASE_URL, CONF, ARTIFACTS, USER_ID, PASSWORD.
// Prints one JSON line `RESULT {...}`.
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const base = process.env.BASE_URL;
const conf = process.env.CONF;
const artifacts = process.env.ARTIFACTS;
const user = process.env.USER_ID;
const password = process.env.PASSWORD;
mkdirSync(artifacts, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: [
    '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
    '--autoplay-policy=no-user-gesture-required',
    `--unsafely-treat-insecure-origin-as-secure=${base}`,
  ],
});
const result = {};

function watch(page, tag) {
  page.on('console', (m) => console.error(`[${tag}] ${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => console.error(`[${tag}] error: ${e.message}`));
}

// What one page receives and sends, from getStats.
const stats = (page) => page.evaluate(async () => {
  const out = {
    audioEnergy: 0, audioBytes: 0, videoFrames: 0, videoBytes: 0, videoStreams: 0,
    sentVideoFrames: 0, tiles: [], ice: window.confgate.pc && window.confgate.pc.iceConnectionState,
  };
  if (!window.confgate.pc) return out;
  for (const s of (await window.confgate.pc.getStats()).values()) {
    if (s.type === 'inbound-rtp' && s.kind === 'audio') {
      out.audioEnergy += s.totalAudioEnergy || 0;
      out.audioBytes += s.bytesReceived || 0;
    }
    if (s.type === 'inbound-rtp' && s.kind === 'video') {
      out.videoFrames += s.framesDecoded || 0;
      out.videoBytes += s.bytesReceived || 0;
      out.videoStreams += 1;
    }
    if (s.type === 'outbound-rtp' && s.kind === 'video') out.sentVideoFrames += s.framesEncoded || 0;
  }
  out.tiles = [...document.querySelectorAll('#grid .tile[data-participant] figcaption')].map((e) => e.textContent);
  return out;
});

try {
  const a = await (await browser.newContext({ viewport: { width: 1000, height: 720 } })).newPage();
  const b = await (await browser.newContext({ viewport: { width: 1000, height: 720 } })).newPage();
  watch(a, 'alice');
  watch(b, 'guest');

  // Alice: log in on the main page, then join with the camera on.
  await a.goto(`${base}/?cam=1&lang=en`);
  await a.waitForSelector('#view-main:not([hidden])');
  await a.fill('#main-user', user);
  await a.fill('#main-pass', password);
  await a.click('#main-login-btn');
  await a.waitForSelector('#main-session:not([hidden])', { timeout: 10000 });
  await a.fill('#main-conf', conf);
  await a.click('#main-form button[type=submit]');
  await a.waitForSelector('#view-room:not([hidden])', { timeout: 15000 });

  // The guest: by link, straight in.
  await b.goto(`${base}/c/${conf}?name=Guest&autojoin=1&cam=1&lang=en`);
  await b.waitForSelector('#view-room:not([hidden])', { timeout: 15000 });

  // Each gets a tile for the other once the server re-offered.
  for (const p of [a, b]) {
    await p.waitForFunction(() => document.querySelectorAll('#grid .tile[data-participant]').length >= 1, null, { timeout: 20000 });
  }
  await a.waitForTimeout(2500);
  result.alice1 = await stats(a);
  result.guest1 = await stats(b);
  await a.waitForTimeout(4000);
  result.alice2 = await stats(a);
  result.guest2 = await stats(b);
  result.aliceParticipants = await a.$$eval('#participants li', (els) => els.map((e) => e.textContent));
  await a.screenshot({ path: join(artifacts, 'two-party-conference.png') });
  await b.screenshot({ path: join(artifacts, 'two-party-conference-guest.png') });

  // The guest leaves: Alice's tile for it goes away.
  await b.click('#btn-leave');
  await a.waitForFunction(() => document.querySelectorAll('#grid .tile[data-participant]').length === 0, null, { timeout: 15000 });
  result.tileGoneAfterLeave = true;
  await a.click('#btn-leave');
} catch (e) {
  result.error = String(e && e.stack || e);
} finally {
  console.log(`RESULT ${JSON.stringify(result)}`);
  await browser.close();
}
