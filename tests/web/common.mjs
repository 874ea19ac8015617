// Shared by the browser scripts: Chromium as TESTING.md says, page logs
// to stderr, and what one page receives and sends (getStats).
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

export const base = process.env.BASE_URL;
export const artifacts = process.env.ARTIFACTS;
mkdirSync(artifacts, { recursive: true });

/// Chromium with fake devices; `extra` adds arguments.
export function launch(extra = []) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
      '--autoplay-policy=no-user-gesture-required',
      // getUserMedia needs a secure context; the tests serve plain HTTP on
      // a namespace address (a real deployment serves HTTPS).
      `--unsafely-treat-insecure-origin-as-secure=${base}`,
      ...extra,
    ],
  });
}

/// A page in a context of its own (its own cookies), logging to stderr.
export async function newPage(browser, tag, viewport = { width: 1000, height: 720 }) {
  const page = await (await browser.newContext({ viewport })).newPage();
  page.on('console', (m) => console.error(`[${tag}] ${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => console.error(`[${tag}] error: ${e.message}`));
  return page;
}

export const shot = (page, name) => page.screenshot({ path: join(artifacts, name) });

/// Waits until the page is in the room with ICE connected.
export async function inRoom(page, timeout = 20000) {
  await page.waitForSelector('#view-room:not([hidden])', { timeout });
  await page.waitForFunction(
    () => window.confgate.pc && ['connected', 'completed'].includes(window.confgate.pc.iceConnectionState),
    null, { timeout },
  );
}

/// What one page receives and sends: audio energy and bytes, decoded video
/// frames per m-section, sent frames, the selected candidate pair.
export const stats = (page) => page.evaluate(async () => {
  const out = {
    audioEnergy: 0, audioBytes: 0, audioPackets: 0, videoFrames: 0, videoByMid: {}, ptByMid: {}, sentVideoFrames: 0,
    sentByMid: {}, ice: null, local: null, pliSent: 0, pliReceived: 0, keyframesDecoded: 0,
    nackSent: 0, nackReceived: 0, videoPacketsIn: 0, videoLost: 0, srIn: 0, rrIn: 0,
  };
  const pc = window.confgate.pc;
  if (!pc) return out;
  out.ice = pc.iceConnectionState;
  const all = await pc.getStats();
  for (const s of all.values()) {
    if (s.type === 'inbound-rtp' && s.kind === 'audio') {
      out.audioEnergy += s.totalAudioEnergy || 0;
      out.audioBytes += s.bytesReceived || 0;
      out.audioPackets += s.packetsReceived || 0;
    }
    if (s.type === 'inbound-rtp' && s.kind === 'video') {
      out.videoFrames += s.framesDecoded || 0;
      out.videoByMid[s.mid] = (out.videoByMid[s.mid] || 0) + (s.framesDecoded || 0);
      out.pliSent += s.pliCount || 0;
      out.nackSent += s.nackCount || 0;
      out.videoPacketsIn += s.packetsReceived || 0;
      out.videoLost += s.packetsLost || 0;
      out.keyframesDecoded += s.keyFramesDecoded || 0;
      const c = s.codecId && all.get(s.codecId);
      if (c) out.ptByMid[s.mid] = c.payloadType;
    }
    if (s.type === 'outbound-rtp' && s.kind === 'video') {
      out.sentVideoFrames += s.framesEncoded || 0;
      out.pliReceived += s.pliCount || 0;
      out.nackReceived += s.nackCount || 0;
      out.sentByMid[s.mid] = (out.sentByMid[s.mid] || 0) + (s.framesEncoded || 0);
    }
    if (s.type === 'remote-outbound-rtp') out.srIn += s.reportsSent || 0;
    if (s.type === 'remote-inbound-rtp') out.rrIn += 1;
    if (s.type === 'transport' && s.selectedCandidatePairId) {
      const p = all.get(s.selectedCandidatePairId);
      const l = p && all.get(p.localCandidateId);
      if (l) out.local = `${l.address}:${l.port}`;
    }
  }
  return out;
});

/// Prints the result line the Rust test reads.
export function report(result) {
  console.log(`RESULT ${JSON.stringify(result)}`);
}
