// Device selection, before and during the call. Chromium's fake devices
// (three cameras with `device-count=3`, three microphones, three
// speakers; its second fake camera gives depth frames (Y16), which the
// encoder does not take, so the test uses the first and the third):
// - the join screen lists them; the second camera and a microphone are
//   chosen there, and the call starts with them;
// - in the room the Devices panel switches camera and microphone (the
//   senders' tracks change, the other participant keeps decoding video)
//   and the speaker (the remote audio element's sink).
// Environment: BASE_URL, ARTIFACTS, CONF.
// Prints one JSON line `RESULT {...}`.
import { launch, newPage, shot, inRoom, stats, report, base } from './common.mjs';

const conf = process.env.CONF;
const browser = await launch(['--use-fake-device-for-media-stream=device-count=3']);
const result = {};
const options = (page, id) => page.$$eval(`#${id} option`, (els) => els.map((o) => ({ value: o.value, label: o.textContent })));
// The device ids the page sends from now.
const senders = (page) => page.evaluate(() => {
  const out = {};
  for (const tr of window.confgate.pc.getTransceivers()) {
    const t = tr.sender.track;
    if (t && (tr.mid === '0' || tr.mid === '1')) out[tr.mid === '0' ? 'mic' : 'cam'] = { id: t.getSettings().deviceId, label: t.label, state: t.readyState };
  }
  return out;
});

try {
  const peer = await newPage(browser, 'peer');
  await peer.goto(`${base}/c/${conf}?name=Peer&autojoin=1&cam=1&lang=en`);
  await inRoom(peer);

  const page = await newPage(browser, 'dev');
  await page.goto(`${base}/c/${conf}?name=Dev&cam=1&lang=en`);
  await page.waitForSelector('#view-join:not([hidden]) #devices');
  await page.waitForFunction(() => document.querySelectorAll('#dev-cam option').length >= 3, null, { timeout: 10000 });
  const cams = await options(page, 'dev-cam');
  const mics = await options(page, 'dev-mic');
  const spks = await options(page, 'dev-spk');
  result.join = {
    cams: cams.map((o) => o.label), mics: mics.map((o) => o.label), spks: spks.map((o) => o.label),
    labels: await page.$$eval('#devices label', (els) => els.map((e) => `${e.textContent}->${e.htmlFor}`)),
  };
  // Choose another camera and the second microphone before joining.
  const cam2 = cams.find((o) => o.label.includes('fake_device_2'));
  const mic2 = mics.find((o) => o.label === 'Fake Audio Input 1');
  await page.selectOption('#dev-cam', cam2.value);
  await page.selectOption('#dev-mic', mic2.value);
  await page.waitForFunction((id) => {
    const v = document.querySelector('#join-video');
    const t = v.srcObject && v.srcObject.getVideoTracks()[0];
    return t && t.getSettings().deviceId === id && v.videoWidth > 0;
  }, cam2.value, { timeout: 10000 });
  result.previewShown = await page.isVisible('#join-preview');
  await shot(page, 'join-screen-devices.png');
  await page.click('#join-form button[type=submit]');
  await inRoom(page);
  await page.waitForFunction(() => document.querySelectorAll('#grid .tile[data-participant]').length >= 1, null, { timeout: 15000 });
  result.startedWith = await senders(page);
  result.chosen = { cam: cam2.value, mic: mic2.value };

  // During the call: the Devices panel.
  await page.click('#btn-devices');
  result.panel = {
    expanded: await page.getAttribute('#btn-devices', 'aria-expanded'),
    inRoom: await page.isVisible('#room-devices #devices'),
    focused: await page.evaluate(() => document.activeElement && document.activeElement.id),
  };
  // The peer decodes this camera before the switch.
  const framesAtPeer = async () => (await stats(peer)).videoFrames;
  for (let i = 0; i < 50 && (await framesAtPeer()) < 10; i += 1) await page.waitForTimeout(200);
  result.peerFramesBefore = await framesAtPeer();
  const cam1 = cams.find((o) => o.label.includes('fake_device_0'));
  const mic3 = mics.find((o) => o.label === 'Fake Audio Input 2');
  const spk1 = spks.find((o) => o.label === 'Fake Audio Output 1');
  await page.selectOption('#dev-cam', cam1.value);
  await page.selectOption('#dev-mic', mic3.value);
  await page.selectOption('#dev-spk', spk1.value);
  await page.waitForFunction(([c, m]) => {
    const ids = {};
    for (const tr of window.confgate.pc.getTransceivers()) if (tr.sender.track) ids[tr.mid] = tr.sender.track.getSettings().deviceId;
    return ids['1'] === c && ids['0'] === m;
  }, [cam1.value, mic3.value], { timeout: 10000 });
  result.switchedTo = await senders(page);
  result.wanted = { cam: cam1.value, mic: mic3.value, spk: spk1.value };
  result.sinkId = await page.$eval('#remote-audio', (a) => a.sinkId);
  const own1 = await stats(page);
  const p1 = await stats(peer);
  await page.waitForTimeout(3000);
  const own2 = await stats(page);
  const p2 = await stats(peer);
  result.sentFrames = [own1.sentVideoFrames, own2.sentVideoFrames];
  result.peerFrames = [p1.videoFrames, p2.videoFrames];
  result.peerAudio = [p1.audioBytes, p2.audioBytes];
  await shot(page, 'room-devices.png');
  await page.click('#btn-leave');
  await peer.click('#btn-leave');
} catch (e) {
  result.error = String(e && e.stack || e);
} finally {
  report(result);
  await browser.close();
}
