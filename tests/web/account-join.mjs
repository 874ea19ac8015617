// Chromium logs in and joins as an account, two ways (MODE):
// - `account`: the personal account page (/account): log in, see the
//   conferences the account is a member of, "Join conference" → the web
//   client joins as that user without asking for credentials again; then
//   log out.
// - `main`: log in on the main page (/), then join with only a display
//   name ("anonymously"): the session cookie makes it the account.
// Environment: BASE_URL, ARTIFACTS, MODE, USER_ID, PASSWORD, CONF (the
// conference to join), STAY_SECS (how long to stay in, so that the test
// can look at the participant list through the admin API).
// Prints one JSON line `RESULT {...}`.
import { chromium } from 'playwright-core';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const base = process.env.BASE_URL;
const artifacts = process.env.ARTIFACTS;
const mode = process.env.MODE || 'account';
const user = process.env.USER_ID;
const password = process.env.PASSWORD;
const conf = process.env.CONF;
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
    `--unsafely-treat-insecure-origin-as-secure=${base}`,
  ],
  viewport: { width: 900, height: 700 },
});
const shot = (page, name) => page.screenshot({ path: join(artifacts, name) });
const result = { mode };

async function inRoom(page) {
  await page.waitForSelector('#view-room:not([hidden])', { timeout: 15000 });
  await page.waitForFunction(() => window.confgate.pc && ['connected', 'completed'].includes(window.confgate.pc.iceConnectionState), null, { timeout: 15000 });
  const stats = () => page.evaluate(async () => {
    const out = { inbound: 0, outbound: 0, pair: false };
    for (const s of (await window.confgate.pc.getStats()).values()) {
      if (s.type === 'inbound-rtp' && s.kind === 'audio') out.inbound += s.bytesReceived;
      if (s.type === 'outbound-rtp' && s.kind === 'audio') out.outbound += s.bytesSent;
      // A pair whose check was answered has succeeded: Chromium reports it
      // `in-progress` again while each later consent check is in flight.
      if (s.type === 'candidate-pair' && (s.state === 'succeeded' || s.responsesReceived > 0)) out.pair = true;
    }
    return out;
  });
  await page.waitForTimeout(1500);
  result.first = await stats();
  await page.waitForTimeout(3000);
  result.second = await stats();
  result.welcomeUser = await page.evaluate(() => window.confgate.user);
  result.participants = await page.$$eval('#participants li', (els) => els.map((e) => e.textContent));
  await page.waitForTimeout(Math.max(0, stay * 1000 - 4500));
  await page.click('#btn-leave');
  await page.waitForSelector('#view-ended:not([hidden])');
  result.left = true;
}

async function cookie() {
  const c = (await ctx.cookies(base)).find((x) => x.name === 'confgate_session');
  return c ? { httpOnly: c.httpOnly, sameSite: c.sameSite, secure: c.secure, len: c.value.length } : null;
}

try {
  const page = await ctx.newPage();
  page.on('console', (m) => console.error(`[page] ${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => console.error(`[page] error: ${e.message}`));

  if (mode === 'account') {
    await page.goto(`${base}/account?lang=en`);
    await page.waitForSelector('#account-login:not([hidden])');
    await shot(page, 'account-login.png');
    // Keyboard only: labels lead to the fields, Enter submits.
    const form = page.locator('#account-login');
    await form.getByLabel('User or full ID').fill(user);
    await form.getByLabel('Password').fill(password);
    await form.getByLabel('Password').press('Enter');
    await page.waitForSelector('#account-home:not([hidden])');
    await page.waitForSelector('#conf-list .join-conf, #conf-empty:not([hidden])');
    result.cookie = await cookie();
    result.listed = await page.$$eval('#conf-list .join-conf', (els) => els.map((e) => e.dataset.conf));
    result.menu = await page.$$eval('#menu-conferences a', (els) => els.map((e) => e.dataset.conf));
    result.joinLabels = await page.$$eval('#conf-list .join-conf', (els) => els.map((e) => e.getAttribute('aria-label')));
    await shot(page, 'personal-account.png');
    await page.setViewportSize({ width: 390, height: 844 });
    await shot(page, 'personal-account-phone.png');
    await page.goto(`${base}/account?lang=ru`);
    await page.waitForSelector('#account-home:not([hidden]) #conf-list .join-conf');
    await shot(page, 'personal-account-phone-ru.png');
    await page.setViewportSize({ width: 900, height: 700 });
    await page.goto(`${base}/account?lang=en`);
    await page.waitForSelector('#account-home:not([hidden]) #conf-list .join-conf');
    await page.getByRole('button', { name: `Join conference: ` , exact: false }).first().click();
    await page.waitForURL((u) => u.pathname === `/c/${conf}` && u.searchParams.get('autojoin') === '1');
    result.url = page.url();
    await page.waitForSelector('#view-room:not([hidden])', { timeout: 15000 });
    await shot(page, 'account-joined.png');
    await inRoom(page);
    // Log out from the side menu: the cookie goes, the session is forgotten.
    await page.goto(`${base}/account?lang=en`);
    await page.waitForSelector('#account-home:not([hidden])');
    await page.click('#side-menu .logout');
    await page.waitForSelector('#account-login:not([hidden])');
    result.afterLogout = await page.evaluate(async () => (await fetch('/api/session')).status);
    result.cookieAfterLogout = await cookie();
  } else {
    await page.goto(`${base}/?lang=en`);
    await page.waitForSelector('#view-main:not([hidden])');
    await page.fill('#main-user', user);
    await page.fill('#main-pass', password);
    await page.click('#main-login-btn');
    await page.waitForSelector('#main-session:not([hidden])');
    result.cookie = await cookie();
    await page.fill('#main-conf', conf);
    await page.fill('#main-name', 'Anon Name');
    await shot(page, 'main-logged-in.png');
    // No credentials in this join: the cookie says who it is.
    await page.click('#main-form button[type=submit]');
    await inRoom(page);
  }
} catch (e) {
  result.error = String(e && e.stack || e);
} finally {
  console.log(`RESULT ${JSON.stringify(result)}`);
  await ctx.close();
  rmSync(profile, { recursive: true, force: true });
}
