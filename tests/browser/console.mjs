// The compliance console in headless Chromium (Debian's /usr/bin/chromium,
// driven by playwright-core). Run by tests/tests/console.rs against a real
// `privet serve`:
//
//   node tests/browser/console.mjs BASE_URL API_KEY SCREENSHOT_DIR CUSTOMER_ID
//
// Signs in, searches, opens an event and waits for its inclusion proof to
// verify in the page (WebCrypto), shows that a tampered proof or event does
// not verify, reads the timeline and the log health (running a full
// verification), runs a subject report and downloads its CSV, looks at a
// narrow window, signs out with the keyboard and checks the API then
// refuses. A screenshot of each step goes to SCREENSHOT_DIR; the CSV is
// saved there as subject.csv for the Rust test to check. Exits non-zero on
// any failed check.

import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import path from 'node:path';

const [base, apiKey, shots, customer] = process.argv.slice(2);
if (!base || !apiKey || !shots || !customer) {
  console.error('usage: node console.mjs BASE_URL API_KEY SCREENSHOT_DIR CUSTOMER_ID');
  process.exit(2);
}
const executablePath = process.env.PRIVET_CHROMIUM || '/usr/bin/chromium';
const watchdog = setTimeout(() => {
  console.error('FAIL: the browser test did not finish within 5 minutes');
  process.exit(3);
}, 300_000);

mkdirSync(shots, { recursive: true });
let step = 0;
async function shot(page, name) {
  step += 1;
  const file = path.join(shots, `${String(step).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  console.log(`screenshot ${file}`);
}

function check(condition, message) {
  if (!condition) {
    throw new Error(message);
  }
  console.log(`ok: ${message}`);
}

// Flips one bit of a standard-base64 value's decoded bytes.
function flipBase64(text, at) {
  const bytes = Buffer.from(text, 'base64');
  bytes[at % bytes.length] ^= 0x01;
  return bytes.toString('base64');
}

const browser = await chromium.launch({
  executablePath,
  headless: true,
  // Root in containers and CI has no user namespaces for the sandbox.
  args: ['--no-sandbox'],
});
let failed = false;
try {
  const context = await browser.newContext({
    viewport: { width: 1280, height: 800 },
    acceptDownloads: true,
  });
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error' && /Content.Security.Policy|Refused to/i.test(msg.text())) {
      problems.push(`CSP: ${msg.text()}`);
    }
  });

  // 1. Sign in, with the keyboard (type, Enter submits the form).
  await page.goto(`${base}/console`);
  await page.getByLabel('API key').fill(apiKey);
  await shot(page, 'sign-in');
  await page.getByLabel('API key').press('Enter');
  await page.locator('#who-text').filter({ hasText: 'compliance-officer' }).waitFor();
  await page.locator('#results-body tr').first().waitFor();
  check(await page.locator('#sign-in-section').isHidden(), 'signed in: the sign-in form is gone');
  const cookies = await context.cookies();
  const session = cookies.find((c) => c.name === 'privet_console');
  check(session && session.httpOnly && session.sameSite === 'Strict', 'the session cookie is HttpOnly and SameSite=Strict');
  check(await page.evaluate(() => !document.cookie.includes('privet_console')), 'scripts cannot read the session cookie');
  await shot(page, 'signed-in');

  // 2. Search with filters: the recommendation service's denied reads.
  await page.getByLabel('Principal').fill('recs-service');
  await page.getByLabel('Decision').selectOption('denied');
  const searched = page.waitForResponse((r) => r.url().includes('/v1/audit/search'));
  await page.getByRole('button', { name: 'Search', exact: true }).click();
  const searchUrl = new URL((await searched).url());
  check(searchUrl.searchParams.get('q') === 'principal:"recs-service" AND outcome:denied',
    `filters become the query ${searchUrl.searchParams.get('q')}`);
  const row = page.locator('#results-body tr').first();
  await row.waitFor();
  await page.locator('#search-summary').filter({ hasText: 'of' }).waitFor();
  const rowText = await row.innerText();
  for (const needle of ['recs-service', 'customers', 'recommendation', 'denied', 'policy_denied', 'recs-no-customers-or-payments']) {
    check(rowText.includes(needle), `the denied row shows ${needle}`);
  }
  const rows = await page.locator('#results-body tr').count();
  const allDenied = await page.locator('#results-body .outcome.denied').count();
  check(rows === allDenied, `every row of the filtered search is denied (${rows})`);
  await shot(page, 'search-denied');

  // 3. Open the event: its proof verifies in the page.
  await row.getByRole('button', { name: /Open event/ }).click();
  const badge = page.locator('#proof-badge');
  await page.locator('#proof-badge.ok').waitFor();
  check((await badge.innerText()).includes('Verified'), `verified badge: ${await badge.innerText()}`);
  const eventText = await page.locator('#event-fields').innerText();
  check(eventText.includes('recs-no-customers-or-payments'), 'the event detail names its policy');
  await shot(page, 'event-verified');

  // 4. Attacks: a proof with one flipped bit, an event with one flipped
  //    bit. Neither may verify.
  await page.route('**/v1/audit/proof/**', async (route) => {
    const response = await route.fetch();
    const json = await response.json();
    if (json.proof.length > 0) {
      json.proof[0] = flipBase64(json.proof[0], 5);
    } else {
      json.root = flipBase64(json.root, 5);
    }
    await route.fulfill({ response, json });
  });
  await row.getByRole('button', { name: /Open event/ }).click();
  await page.locator('#proof-badge.bad').waitFor();
  check((await badge.innerText()).startsWith('Not verified'), `tampered proof: ${await badge.innerText()}`);
  await shot(page, 'event-tampered-proof');
  await page.unroute('**/v1/audit/proof/**');

  await page.route('**/v1/audit/events/**', async (route) => {
    const response = await route.fetch();
    const json = await response.json();
    // recs-service → recs-servicf: a forged "who".
    const entry = Buffer.from(json.entry, 'base64').toString('utf8').replace('"recs-service"', '"recs-servicf"');
    json.entry = Buffer.from(entry, 'utf8').toString('base64');
    await route.fulfill({ response, json });
  });
  await row.getByRole('button', { name: /Open event/ }).click();
  await page.locator('#proof-badge.bad').waitFor();
  check((await badge.innerText()).includes('do not hash'), `tampered event: ${await badge.innerText()}`);
  await shot(page, 'event-tampered-entry');
  await page.unroute('**/v1/audit/events/**');

  // Untouched again: tamper-free (opened from the keyboard).
  await row.getByRole('button', { name: /Open event/ }).focus();
  await page.keyboard.press('Enter');
  await page.locator('#proof-badge.ok').waitFor();
  check(true, 'the untouched event verifies again');

  // 5. Timeline (its tab chosen from the keyboard).
  await page.getByRole('button', { name: 'Timeline' }).focus();
  await page.keyboard.press('Enter');
  await page.locator('#timeline-charts figure').first().waitFor();
  const captions = await page.locator('#timeline-charts figcaption').allInnerTexts();
  const recs = captions.find((c) => c.startsWith('recs-service'));
  check(recs && !recs.includes(' 0 denials'), `the timeline counts recs-service's denials: ${recs}`);
  check(await page.locator('#timeline-charts rect.denials').count() > 0, 'denials are drawn');
  await shot(page, 'timeline');

  // 6. Log health, with a full verification.
  await page.getByRole('button', { name: 'Log health' }).click();
  await page.locator('#checkpoint-badge.ok').waitFor();
  await page.getByRole('button', { name: 'Run full verification' }).click();
  await page.locator('#health-fields').filter({ hasText: 'intact' }).waitFor();
  const health = await page.locator('#health-fields').innerText();
  check(/Verified size\s+\d+ events/.test(health), 'the health panel shows the verified size');
  check(!health.includes('never'), 'the last full verification has a time');
  await shot(page, 'log-health');

  // 7. Subject report and its CSV.
  await page.getByRole('button', { name: 'Subject report' }).click();
  await page.getByLabel('Customer id').fill(customer);
  await page.getByRole('button', { name: 'Run report' }).click();
  await page.locator('#subject-body tr').first().waitFor();
  const summary = await page.locator('#subject-summary').innerText();
  check(summary.includes(`customer:${customer}`), `report: ${summary}`);
  check((await page.locator('#subject-body').innerText()).includes('marketing-service'), 'the report lists the marketing access');
  await shot(page, 'subject-report');
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('button', { name: 'Download CSV' }).click(),
  ]);
  check(download.suggestedFilename() === `subject-customer-${customer}.csv`, `CSV named ${download.suggestedFilename()}`);
  await download.saveAs(path.join(shots, 'subject.csv'));

  // 7b. An attack on the officer: markup in text the page displays is
  // shown as text, never rendered or run. The audit log keeps no free text
  // a principal chose (fingerprints drop literals and aliases: the Rust
  // side checks that), so the way in left is what the page echoes back, as
  // the subject report does with the id it was given.
  const payload = '<img src=x onerror=window.pwned=1>';
  await page.getByLabel('Customer id').fill(payload);
  await page.getByRole('button', { name: 'Run report' }).click();
  await page.locator('#subject-summary').filter({ hasText: 'onerror' }).waitFor();
  check((await page.locator('#subject-summary').innerText()).includes(payload), 'the hostile id is shown as text');
  const injected = await page.evaluate(() => ({
    images: document.querySelectorAll('img').length,
    pwned: window.pwned,
  }));
  check(injected.images === 0 && injected.pwned === undefined, `no element or script from the payload ${JSON.stringify(injected)}`);
  await shot(page, 'hostile-markup-as-text');

  // 8. A narrow window: no sideways scrolling, results as cards.
  await page.setViewportSize({ width: 420, height: 800 });
  await page.getByRole('button', { name: 'Audit search' }).click();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 0, `no horizontal overflow at 420 px (${overflow})`);
  await shot(page, 'narrow-search');
  await page.setViewportSize({ width: 1280, height: 800 });

  // 9. Sign out with the keyboard; the API then refuses the old session.
  await page.locator('#sign-out').focus();
  await page.keyboard.press('Enter');
  await page.locator('#sign-in-section').waitFor();
  const after = await page.evaluate(async () => {
    const r = await fetch('/v1/audit/search?q=*', { headers: { 'X-Privet-Console': '1' } });
    return { status: r.status, body: await r.json() };
  });
  check(after.status === 401 && after.body.error.code === 'unauthenticated', `after sign-out the API refuses (${after.status})`);
  await shot(page, 'signed-out');

  check(problems.length === 0, `no CSP violations or page errors ${JSON.stringify(problems)}`);
  console.log('PASS: console browser test');
} catch (e) {
  failed = true;
  console.error(`FAIL: ${e.stack || e}`);
} finally {
  clearTimeout(watchdog);
  await browser.close();
}
process.exit(failed ? 1 : 0);
