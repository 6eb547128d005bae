// Drives headless Chromium through the PHP app that scripts/browser-test serves with
// `fcgi serve` over HTTPS and HTTP/2: the form posts a name, PHP keeps it in a session and redirects, the
// next page greets the name. Usage: node browser-test.cjs BASE_URL OUT_DIR
// (NODE_PATH must reach playwright-core; CHROMIUM is the browser's path.)
'use strict';
const fs = require('fs');
const path = require('path');
const { chromium } = require('playwright-core');

const [base, outDir] = process.argv.slice(2);
const NAME = 'Zoë <b>&</b> "O\'Brien"';
let passed = 0;
let failed = 0;

function check(what, ok, detail) {
  if (ok) {
    passed++;
    console.log(`ok: ${what}`);
  } else {
    failed++;
    console.log(`FAILED: ${what}${detail === undefined ? '' : ': ' + detail}`);
  }
}

(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
  try {
    // The certificate is the test's own, made for this run.
    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    const page = await context.newPage();
    const statuses = [];
    page.on('response', (r) => statuses.push(`${r.status()} ${new URL(r.url()).pathname}`));

    const form = await page.goto(`${base}/`);
    check('the form page answers 200', form.status() === 200, form.status());
    check('the form page is HTML', (form.headers()['content-type'] || '').startsWith('text/html'));

    await page.fill('#name', NAME);
    await Promise.all([page.waitForURL(`${base}/greet.php`), page.click('#go')]);
    check('POST 302 then GET of the greeting',
      statuses.includes('302 /login.php') && statuses.includes('200 /greet.php'),
      statuses.join(', '));

    const greeting = await page.textContent('#greeting');
    check('the page greets the name', greeting === `Hello, ${NAME}!`, JSON.stringify(greeting));
    check('the name is escaped, not markup', (await page.$$('#greeting b')).length === 0);
    const via = await page.textContent('#via');
    check('PHP saw fcgi as SERVER_SOFTWARE', via.startsWith('fcgi/'), via);
    const scheme = await page.textContent('#scheme');
    check('PHP saw HTTPS=on over HTTP/2', scheme === 'on HTTP/2.0', scheme);
    const protocol = await page.evaluate(
      () => performance.getEntriesByType('navigation')[0].nextHopProtocol);
    check('the browser spoke HTTP/2 (ALPN h2)', protocol === 'h2', protocol);

    const color = await page.$eval('#greeting', (e) => getComputedStyle(e).color);
    check('the static stylesheet applies', color === 'rgb(0, 128, 0)', color);
    check('the stylesheet came through the gateway', statuses.includes('200 /style.css'),
      statuses.join(', '));

    const cookies = await context.cookies();
    const session = cookies.find((c) => c.name === 'PHPSESSID');
    check('a session cookie is set', session !== undefined && session.value.length > 0,
      JSON.stringify(cookies));

    // The session holds: a reload greets again; without the cookie, no greeting.
    await page.reload();
    check('a reload still greets', (await page.textContent('#greeting')) === `Hello, ${NAME}!`);
    await context.clearCookies();
    const anonymous = await page.goto(`${base}/greet.php`);
    check('without the cookie: 403', anonymous.status() === 403, anonymous.status());
    await page.goBack();

    fs.mkdirSync(outDir, { recursive: true });
    await page.goto(`${base}/`);
    await page.fill('#name', NAME);
    await Promise.all([page.waitForURL(`${base}/greet.php`), page.click('#go')]);
    await page.screenshot({ path: path.join(outDir, 'greeting.png') });
    fs.writeFileSync(path.join(outDir, 'greeting.html'), await page.content());
    check('the greeting again after a new sign-in',
      (await page.textContent('#greeting')) === `Hello, ${NAME}!`);
  } catch (e) {
    failed++;
    console.log(`FAILED: ${e.stack || e}`);
  } finally {
    await browser.close();
  }
  console.log(`browser-test: ${passed} passed, ${failed} failed`);
  process.exit(failed === 0 && passed > 0 ? 0 : 1);
})();
