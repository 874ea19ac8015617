// Reconnecting after a brief network loss: two browsers in a conference
// (camera and microphone each); the client namespace's link goes down
// (this script runs `ip link set VETH down/up` itself, so the timing is
// its own) for at least DOWN_SECS and until both pages have said
// "reconnecting" and asked for an ICE restart (Chromium reports ICE
// `disconnected` some 7 s into a silent path, and the page waits 2.5 s
// more). Then the link comes back and media must too: decoded frames and
// audio energy grow again on both pages.
// Environment: BASE_URL, ARTIFACTS, CONF, VETH, DOWN_SECS.
// Prints one JSON line `RESULT {...}`.
import { execFileSync } from 'node:child_process';
import { launch, newPage, shot, inRoom, stats, report, base } from './common.mjs';

const conf = process.env.CONF;
const veth = process.env.VETH;
const downSecs = Number(process.env.DOWN_SECS || '6');
const browser = await launch();
const result = {};
const link = (state) => execFileSync('ip', ['link', 'set', veth, state]);
const sample = async (pages) => Object.fromEntries(await Promise.all(pages.map(async ([k, p]) => [k, await stats(p)])));
const netLog = (page) => page.evaluate(() => window.confgate.netLog.map((e) => e.code));
let down = false;

try {
  const ann = await newPage(browser, 'ann');
  const ben = await newPage(browser, 'ben');
  await ann.goto(`${base}/c/${conf}?name=Ann&autojoin=1&cam=1&lang=en`);
  await inRoom(ann);
  await ben.goto(`${base}/c/${conf}?name=Ben&autojoin=1&cam=1&lang=en`);
  await inRoom(ben);
  for (const p of [ann, ben]) {
    await p.waitForFunction(() => document.querySelectorAll('#grid .tile[data-participant]').length === 1, null, { timeout: 15000 });
  }
  const pages = [['ann', ann], ['ben', ben]];
  await ann.waitForTimeout(2500);
  result.before = await sample(pages);

  // The path goes away.
  link('down');
  down = true;
  const t0 = Date.now();
  await ann.waitForSelector('#net-status.reconnecting', { timeout: 30000 });
  result.noticeAfterMs = Date.now() - t0;
  result.noticeText = await ann.textContent('#net-status');
  result.noticeRole = await ann.getAttribute('#net-status', 'role');
  await shot(ann, 'reconnecting.png');
  await ben.waitForFunction(() => window.confgate.restarts > 0, null, { timeout: 30000 });
  result.benNoticeAfterMs = Date.now() - t0;
  const rest = downSecs * 1000 - (Date.now() - t0);
  if (rest > 0) await ann.waitForTimeout(rest);
  result.during = await sample(pages);
  link('up');
  down = false;
  result.downForMs = Date.now() - t0;

  // Back: both connected again and say so.
  for (const p of [ann, ben]) {
    await p.waitForFunction(
      () => window.confgate.netLog.some((e) => e.code === 'reconnected')
        && ['connected', 'completed'].includes(window.confgate.pc.iceConnectionState),
      null, { timeout: 45000 },
    );
  }
  result.reconnectedAfterMs = Date.now() - t0;
  // The restart's new candidate pair carries the media (the relay endpoint
  // was pointed at the newly nominated address).
  for (const [k, p] of pages) {
    const was = result.before[k].local;
    for (let i = 0; i < 100 && (await stats(p)).local === was; i += 1) await p.waitForTimeout(200);
  }
  result.restartedAfterMs = Date.now() - t0;
  await ann.waitForTimeout(2000);
  result.after1 = await sample(pages);
  await ann.waitForTimeout(4000);
  result.after2 = await sample(pages);
  result.annLog = await netLog(ann);
  result.benLog = await netLog(ben);
  result.restarts = { ann: await ann.evaluate(() => window.confgate.reconnects), ben: await ben.evaluate(() => window.confgate.reconnects) };
  result.tiles = await ann.$$eval('#grid .tile[data-participant] figcaption', (els) => els.map((e) => e.textContent));
  await shot(ann, 'reconnected.png');
  await ann.click('#btn-leave');
  await ben.click('#btn-leave');
} catch (e) {
  result.error = String(e && e.stack || e);
} finally {
  if (down) { try { link('up'); } catch { /* the namespace may be gone */ } }
  report(result);
  await browser.close();
}
