// The web wizard and the panel in headless Chromium (Debian's chromium, driven by playwright-core), as a provider
// uses them: the setup code from the console, the administrator (a weak password refused first), the
// authenticator (a wrong code refused first), the recovery codes, the SSH key and port (22 refused), the proof of
// an SSH login, then a password + TOTP login, the dashboard and the accounts page. A screenshot of every step goes
// to the screenshot directory. Run by tests/browser/run inside the admin's network namespace.
//
// Usage: node wizard.mjs URL SETUP_CODE PUBKEY_FILE LOGIN_HELPER SCREENSHOT_DIR
import { chromium } from 'playwright-core';
import { execFileSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { readFileSync, mkdirSync } from 'node:fs';

const [url, setupCode, pubkeyFile, loginHelper, shots] = process.argv.slice(2);
const pubkey = readFileSync(pubkeyFile, 'utf8').trim();
const password = 'tangerine violin oxide march';
const port = '40222';
mkdirSync(shots, { recursive: true });

// RFC 6238 TOTP (SHA-1, 6 digits, 30 s), as an authenticator app computes it.
function totp(base32, offsetSeconds = 0) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const c of base32.replace(/[ =]/g, '')) bits += alphabet.indexOf(c).toString(2).padStart(5, '0');
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor((Date.now() / 1000 + offsetSeconds) / 30)));
  const h = createHmac('sha1', key).update(counter).digest();
  const o = h[h.length - 1] & 0xf;
  const n = (h.readUInt32BE(o) & 0x7fffffff) % 1000000;
  return n.toString().padStart(6, '0');
}

let step = 0;
async function shot(page, name) {
  step += 1;
  const file = `${shots}/${String(step).padStart(2, '0')}-${name}.png`;
  await page.screenshot({ path: file, fullPage: true });
  console.log(`screenshot ${file}`);
}
let current = null;
async function expect(cond, what) {
  if (!cond) {
    const body = current ? ((await current.textContent('body')) || '').replace(/\s+/g, ' ').slice(0, 600) : '';
    throw new Error(`FAILED: ${what}\n  at ${current ? current.url() : '?'}: ${body}`);
  }
  console.log(`ok: ${what}`);
}
async function text(page) {
  return (await page.textContent('body')) || '';
}

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
});
try {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  current = page;
  const scripts = [];
  page.on('console', (m) => scripts.push(m.text()));

  await page.goto(url);
  await expect(page.url().endsWith('/setup'), 'a fresh machine sends the browser to the setup wizard');
  await shot(page, 'setup-code');
  await page.fill('#code', 'AAAA-BBBB-CCCC');
  await page.click('button[type=submit]');
  await expect((await text(page)).includes('wrong or expired setup code'), 'a wrong setup code is refused');
  await page.fill('#code', setupCode);
  await page.click('button[type=submit]');
  await expect(page.url().endsWith('/setup/admin'), 'the console\'s setup code opens the wizard');

  await page.fill('#username', 'alice');
  await page.fill('#password', 'Company2024!');
  await page.fill('#password2', 'Company2024!');
  await page.click('button[type=submit]');
  await expect((await text(page)).includes('use at least 14'), 'a short password is refused with the reason');
  await shot(page, 'weak-password');
  await page.fill('#password', password);
  await page.fill('#password2', password);
  await page.click('button[type=submit]');
  await expect((await page.$('.qr svg')) !== null, 'the authenticator step shows a QR code');
  await shot(page, 'authenticator');
  const secret = await page.getAttribute('input[name=secret]', 'value');
  await page.fill('#code', '000000');
  await page.click('button[type=submit]');
  await expect((await text(page)).includes('wrong code'), 'a wrong TOTP code is refused');
  await page.fill('#code', totp(secret));
  await page.click('button[type=submit]');
  await expect((await page.$$('ol.codes li')).length === 10, 'ten recovery codes are shown');
  await shot(page, 'recovery-codes');
  await page.click('text=I have stored them');

  await page.fill('#key', pubkey);
  await page.fill('#port', '22');
  await page.click('button[type=submit]');
  await expect((await text(page)).includes('port 22 is refused'), 'port 22 is refused');
  await page.fill('#key', pubkey);
  await page.fill('#port', port);
  await page.click('button[type=submit]');
  await expect(page.url().endsWith('/setup/confirm'), 'the SSH step leads to the login proof');
  await expect((await text(page)).includes(`ssh -p ${port} alice@`), 'the page says which ssh command to run');
  await shot(page, 'ssh-confirm');
  await page.click('button[type=submit]');
  await expect((await text(page)).includes('no public-key login'), 'finishing before the SSH login is refused');
  await shot(page, 'ssh-not-yet');
  execFileSync(loginHelper, [port], { stdio: 'inherit' });
  await page.click('button[type=submit]');
  await expect((await text(page)).includes('This machine is set up'), 'after the SSH login, setup completes');
  await shot(page, 'setup-done');

  await page.click('a.button:has-text("Log in")');
  await page.fill('#username', 'alice');
  await page.fill('#password', password);
  await page.click('button[type=submit]');
  await shot(page, 'second-factor');
  await page.fill('#code', totp(secret, 30));
  await page.click('button[type=submit]');
  await expect(page.url().endsWith('/dashboard'), 'password + TOTP log in to the dashboard');
  await page.waitForLoadState('networkidle');
  await shot(page, 'dashboard');
  await page.click('nav >> text=Accounts');
  await page.fill('#username', 'contractor');
  await page.selectOption('#role', 'admin');
  await page.fill('#password', 'marble quiet lantern sofa');
  const inAMonth = new Date(Date.now() + 30 * 86400 * 1000).toISOString().slice(0, 16);
  await page.fill('#expires', inAMonth);
  await page.click('text=Create account');
  await expect((await text(page)).includes('created contractor (admin)'), 'a time-limited account is created');
  await shot(page, 'accounts');
  const cookies = await context.cookies();
  const session = cookies.find((c) => c.name === '__Host-rampart-session');
  await expect(session && session.secure && session.httpOnly && session.sameSite === 'Strict',
    'the session cookie is Secure, HttpOnly, SameSite=Strict');
  await expect(!scripts.some((s) => /Refused to (load|execute)/.test(s)), 'no Content-Security-Policy violation');
  await expect((await page.$$('script')).length === 0, 'no script on the page');
  await page.click('text=Log out');
  await expect(page.url().endsWith('/login'), 'logging out returns to the login');
  console.log('BROWSER OK');
} finally {
  await browser.close();
}
