// A closed conference with a waiting room, in the browser:
// - a guest opens the link and waits on the waiting-room screen;
// - a moderator (a WS account, logged in on the main page) joins, sees
//   the guest in its waiting-room panel and admits it: the guest is in
//   the conference, with audio from the moderator;
// - a second guest is rejected and told so; a third cancels its wait and
//   leaves the moderator's panel.
// Environment: BASE_URL, ARTIFACTS, CONF, MOD_USER, MOD_PASSWORD.
// Prints one JSON line `RESULT {...}`.
import { launch, newPage, shot, inRoom, stats, report, base } from './common.mjs';

const conf = process.env.CONF;
const browser = await launch();
const result = {};
const lobbyNames = (page) => page.$$eval('#lobby-list li .who', (els) => els.map((e) => e.textContent));

try {
  const guest = await newPage(browser, 'guest', { width: 900, height: 700 });
  await guest.goto(`${base}/c/${conf}?name=Visitor&autojoin=1&lang=en`);
  await guest.waitForSelector('#view-lobby:not([hidden])', { timeout: 10000 });
  result.waiting = {
    heading: await guest.textContent('#lobby-title'),
    text: await guest.textContent('#view-lobby'),
    cancelFocused: await guest.evaluate(() => document.activeElement && document.activeElement.id),
  };
  await shot(guest, 'waiting-room.png');
  const phone = await newPage(browser, 'guest-phone', { width: 390, height: 760 });
  await phone.goto(`${base}/c/${conf}?name=Stranger&autojoin=1&lang=en`);
  await phone.waitForSelector('#view-lobby:not([hidden])', { timeout: 10000 });
  await shot(phone, 'waiting-room-phone.png');

  // The moderator logs in on the main page and joins.
  const mod = await newPage(browser, 'moderator');
  await mod.goto(`${base}/?lang=en`);
  await mod.fill('#main-user', process.env.MOD_USER);
  await mod.fill('#main-pass', process.env.MOD_PASSWORD);
  await mod.click('#main-login-btn');
  await mod.waitForSelector('#main-session:not([hidden])', { timeout: 10000 });
  await mod.fill('#main-conf', conf);
  await mod.click('#main-form button[type=submit]');
  await inRoom(mod);
  await mod.waitForFunction(() => document.querySelectorAll('#lobby-list li').length === 2, null, { timeout: 10000 });
  result.moderatorSees = await lobbyNames(mod);
  result.admitLabel = await mod.getAttribute('#lobby-list li:first-child button.admit', 'aria-label');
  await shot(mod, 'moderator-waiting-room.png');

  // Admit the visitor (by its accessible name), reject the stranger.
  await mod.getByRole('button', { name: 'Admit Visitor' }).click();
  await inRoom(guest);
  await guest.waitForFunction(() => document.querySelectorAll('#participants li').length >= 2, null, { timeout: 10000 });
  await guest.waitForTimeout(1500);
  const g1 = await stats(guest);
  await guest.waitForTimeout(2500);
  const g2 = await stats(guest);
  result.admitted = {
    participants: await guest.$$eval('#participants li', (els) => els.map((e) => e.textContent)),
    audioBytes: [g1.audioBytes, g2.audioBytes],
    audioPackets: [g1.audioPackets, g2.audioPackets],
  };
  await shot(guest, 'admitted-from-waiting-room.png');
  await mod.getByRole('button', { name: 'Reject Stranger' }).click();
  await phone.waitForSelector('#view-ended:not([hidden])', { timeout: 10000 });
  result.rejected = await phone.textContent('#ended-text');
  await mod.waitForFunction(() => document.querySelector('#lobby-panel').hidden, null, { timeout: 10000 });

  // A third waits, then cancels: the moderator's panel follows.
  const third = await newPage(browser, 'third');
  await third.goto(`${base}/c/${conf}?name=Quitter&autojoin=1&lang=en`);
  await third.waitForSelector('#view-lobby:not([hidden])', { timeout: 10000 });
  await mod.waitForFunction(() => [...document.querySelectorAll('#lobby-list .who')].some((e) => e.textContent === 'Quitter'), null, { timeout: 10000 });
  await third.keyboard.press('Enter'); // Cancel has the focus.
  await third.waitForSelector('#view-ended:not([hidden])', { timeout: 10000 });
  await mod.waitForFunction(() => document.querySelector('#lobby-panel').hidden, null, { timeout: 10000 });
  result.cancelled = { ended: await third.textContent('#ended-text'), moderatorList: await lobbyNames(mod) };

  // The moderator mutes the guest, then removes it, then ends the conference.
  await mod.getByRole('button', { name: 'Mute: Visitor' }).click();
  await guest.waitForFunction(() => document.querySelector('#notice').textContent.includes('muted'), null, { timeout: 10000 });
  result.mutedNotice = await guest.textContent('#notice');
  await mod.waitForFunction(() => [...document.querySelectorAll('#participants li')].some((li) => li.textContent.includes('Visitor') && li.textContent.includes('(muted)')), null, { timeout: 10000 });
  await shot(mod, 'moderator-controls.png');
  await mod.getByRole('button', { name: 'Remove: Visitor' }).click();
  await guest.waitForSelector('#view-ended:not([hidden])', { timeout: 10000 });
  result.removed = await guest.textContent('#ended-text');
  await mod.click('#btn-end');
  await mod.waitForSelector('#view-ended:not([hidden])', { timeout: 10000 });
  result.endedByModerator = await mod.textContent('#ended-text');
  result.left = true;
} catch (e) {
  result.error = String(e && e.stack || e);
} finally {
  report(result);
  await browser.close();
}
