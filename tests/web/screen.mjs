// Screen sharing as a second video: the presenter shares its screen
// (getDisplayMedia; headless Chromium captures its own screen with
// --use-fake-ui-for-media-stream); the viewer gets it as a tile of its own,
// "<name> (screen)", beside the presenter's camera, decodes it, and sees
// it go when the sharing stops.
// Environment: BASE_URL, ARTIFACTS, CONF.
// Prints one JSON line `RESULT {...}`.
import { launch, newPage, shot, inRoom, stats, report, base } from './common.mjs';

const conf = process.env.CONF;
const browser = await launch(['--auto-select-desktop-capture-source=Entire screen']);
const result = {};
const captions = (page) => page.$$eval('#grid .tile figcaption', (els) => els.filter((e) => e.offsetParent !== null).map((e) => e.textContent));

try {
  const presenter = await newPage(browser, 'presenter');
  const viewer = await newPage(browser, 'viewer');
  await presenter.goto(`${base}/c/${conf}?name=Pia&autojoin=1&cam=1&lang=en`);
  await inRoom(presenter);
  await viewer.goto(`${base}/c/${conf}?name=Viv&autojoin=1&cam=1&lang=en`);
  await inRoom(viewer);
  await viewer.waitForFunction(() => document.querySelectorAll('#grid .tile[data-participant]').length === 1, null, { timeout: 15000 });

  // Something that moves on the presenter's screen, so that frames flow.
  await presenter.evaluate(() => {
    const d = document.createElement('div');
    d.id = 'ticker';
    d.textContent = '0';
    document.querySelector('h2').append(d);
    let n = 0;
    setInterval(() => { n += 1; d.textContent = String(n); }, 50);
  });
  await presenter.click('#btn-screen');
  await presenter.waitForFunction(() => window.confgate.screenTrack && window.confgate.screenTrack.readyState === 'live', null, { timeout: 10000 });
  result.presenter = {
    pressed: await presenter.getAttribute('#btn-screen', 'aria-pressed'),
    button: await presenter.textContent('#btn-screen'),
    ownScreenTile: await presenter.isVisible('#own-screen-tile'),
    track: await presenter.evaluate(() => window.confgate.screenTrack.label),
  };
  await viewer.waitForSelector('#grid .tile[data-screen] figcaption', { timeout: 15000 });
  await viewer.waitForFunction(() => {
    const v = document.querySelector('#grid .tile[data-screen] video');
    return v && v.videoWidth > 0;
  }, null, { timeout: 15000 });
  const v1 = await stats(viewer);
  await viewer.waitForTimeout(3000);
  const v2 = await stats(viewer);
  const p2 = await stats(presenter);
  const screenMid = await viewer.$eval('#grid .tile[data-screen]', (e) => `s${e.dataset.screen}`);
  const camMid = await viewer.$eval('#grid .tile[data-participant]', (e) => `v${e.dataset.participant}`);
  result.viewer = {
    captions: await captions(viewer),
    screenSize: await viewer.$eval('#grid .tile[data-screen] video', (v) => `${v.videoWidth}x${v.videoHeight}`),
    screenFrames: [v1.videoByMid[screenMid] || 0, v2.videoByMid[screenMid] || 0],
    cameraFrames: [v1.videoByMid[camMid] || 0, v2.videoByMid[camMid] || 0],
    screenPt: v2.ptByMid[screenMid],
    cameraPt: v2.ptByMid[camMid],
  };
  result.presenterSent = p2.sentByMid;
  await shot(viewer, 'screen-share.png');
  await shot(presenter, 'screen-share-presenter.png');

  // Stop sharing: the tile goes.
  await presenter.click('#btn-screen');
  await viewer.waitForFunction(() => document.querySelectorAll('#grid .tile[data-screen]').length === 0, null, { timeout: 15000 });
  result.afterStop = {
    captions: await captions(viewer),
    button: await presenter.textContent('#btn-screen'),
    ownScreenTile: await presenter.isVisible('#own-screen-tile'),
  };
  await presenter.click('#btn-leave');
  await viewer.click('#btn-leave');
} catch (e) {
  result.error = String(e && e.stack || e);
} finally {
  report(result);
  await browser.close();
}
