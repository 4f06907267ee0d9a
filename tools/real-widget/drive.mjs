// Drives the real widget in headless Chromium through one conversational
// form, as a visitor would: open the widget on the tenant's page, click the
// welcome chip (or type the trigger phrase), click the CTA that starts the
// form, answer every step, and wait for the widget's submit.
//
//   node drive.mjs <run.json>
//
// run.json: {
//   "playwright_dir": dir with node_modules/playwright-core,
//   "chromium": "/usr/bin/chromium", "chromium_args": [...],
//   "site_url": the tenant page embedding widget.js,
//   "host_url": the local host (requests to it are recorded),
//   "tenant_config": the config.json uploaded, "form_id", "answers": answers.json,
//   "chip_label", "cta_label", "trigger_phrase",
//   "screenshot": PNG path, "out": result JSON path, "timeout_s": overall bound
// }
// Prints a line per step; writes the result (steps, the submit request and
// its answer, the recorded requests, console errors) to run.out. Exit 0 when
// the widget submitted and showed its completion card, 1 otherwise.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

const run = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const require = createRequire(path.join(run.playwright_dir, 'package.json'));
const { chromium } = require('playwright-core');

const config = JSON.parse(fs.readFileSync(run.tenant_config, 'utf8'));
const answers = JSON.parse(fs.readFileSync(run.answers, 'utf8'));
const form = Object.values(config.conversational_forms).find((f) => f.form_id === run.form_id)
  || config.conversational_forms[run.form_id];
const fieldsById = Object.fromEntries(form.fields.map((f) => [f.id, f]));

const result = {
  ok: false,
  opened_by: null,
  steps: [],
  submit: null,
  completion_text: null,
  network: [],
  console_errors: [],
  failed_requests: [],
  screenshot: run.screenshot,
  error: null,
};
const log = (...args) => console.log('[drive]', ...args);
const deadline = Date.now() + (run.timeout_s || 240) * 1000;
const left = (cap) => Math.max(1000, Math.min(cap, deadline - Date.now()));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const browser = await chromium.launch({
  executablePath: run.chromium,
  headless: true,
  args: run.chromium_args,
  timeout: 60_000,
});
let page;
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  page = await context.newPage();
  page.setDefaultTimeout(15_000);

  // Everything the page and the widget's iframe ask of the local host.
  const pending = new Map();
  page.on('request', async (req) => {
    if (!req.url().startsWith(run.host_url)) return;
    const entry = { method: req.method(), url: req.url(), origin: null, body: req.postData() || null, status: null };
    pending.set(req, entry);
    result.network.push(entry);
    // The headers as sent (Origin is added by the browser, not the page).
    const headers = await req.allHeaders().catch(() => req.headers());
    entry.origin = headers.origin || null;
    entry.accept = headers.accept || null;
  });
  page.on('response', async (res) => {
    const entry = pending.get(res.request());
    if (!entry) return;
    entry.status = res.status();
    entry.acao = res.headers()['access-control-allow-origin'] || null;
    const isSubmit = entry.body && entry.body.includes('"submit_form"');
    if (isSubmit || entry.status >= 400) {
      try {
        entry.response = await res.text();
      } catch (err) {
        entry.response = `(unread: ${err.message})`;
      }
    }
  });
  page.on('requestfailed', (req) => {
    const entry = pending.get(req);
    if (entry) entry.failure = req.failure()?.errorText || 'failed';
    result.failed_requests.push({ url: req.url(), error: req.failure()?.errorText || null });
  });
  page.on('console', (msg) => {
    if (msg.type() === 'error') result.console_errors.push(msg.text().slice(0, 500));
  });
  page.on('pageerror', (err) => result.console_errors.push(`pageerror: ${err.message}`.slice(0, 500)));

  log('opening', run.site_url);
  await page.goto(run.site_url, { timeout: left(30_000) });
  await page.waitForSelector('#picasso-widget-iframe', { timeout: left(30_000) });
  const widget = page.frameLocator('#picasso-widget-iframe');
  const frame = async () => {
    const handle = await page.$('#picasso-widget-iframe');
    return handle.contentFrame();
  };

  // Open the widget (its launcher lives inside the iframe).
  await widget.locator('.chat-toggle-button').click({ timeout: left(30_000) });
  log('widget opened');

  // Start the form: the welcome chip (a branch click), else the trigger phrase.
  const chip = widget.getByRole('button', { name: run.chip_label, exact: true });
  try {
    await chip.waitFor({ timeout: left(15_000) });
    await chip.click();
    result.opened_by = `chip "${run.chip_label}"`;
  } catch {
    log(`no welcome chip "${run.chip_label}"; typing "${run.trigger_phrase}"`);
    const composer = widget.locator('textarea.composer-textarea');
    await composer.fill(run.trigger_phrase, { timeout: left(15_000) });
    await composer.press('Enter');
    result.opened_by = `typed "${run.trigger_phrase}"`;
  }
  log('started by', result.opened_by);

  // The CTA that starts the form: the branch's (cta_label), or the one the
  // backend names after the form when it routed by trigger phrase.
  const labels = [run.cta_label, form.cta_text, form.title].filter(Boolean);
  const ctas = labels.map((label) => widget.locator('.chat-window button', { hasText: label }).first());
  const found = await Promise.any(ctas.map((c, i) => c.waitFor({ timeout: left(60_000) }).then(() => i))).catch(() => null);
  if (found === null) {
    const thread = await widget.locator('.chat-window').innerText().catch(() => '');
    throw new Error(`no CTA ${JSON.stringify(labels)} in the answer; the thread reads: ${thread.slice(-600)}`);
  }
  result.cta_clicked = labels[found];
  result.thread_before_form = (await widget.locator('.chat-window').innerText().catch(() => '')).slice(-1500);
  await ctas[found].click();
  log('clicked CTA', JSON.stringify(labels[found]));

  // Answer each step until the completion card shows.
  let lastField = null;
  for (let guard = 0; guard < 40; guard += 1) {
    const f = await frame();
    let state = null;
    const until = Date.now() + left(15_000);
    while (Date.now() < until) {
      state = await f.evaluate(() => {
        if (document.querySelector('.hairline-completion')) return { done: true };
        const label = document.querySelector('.hairline-form-label');
        if (!label) return null;
        const errs = [...document.querySelectorAll('.hairline-form-error, .hairline-composite-error')]
          .map((e) => e.textContent.trim());
        return {
          field: label.id.replace(/^label-/, ''),
          prompt: label.textContent.trim(),
          progress: document.querySelector('.hairline-form-progress-text')?.textContent.trim() || '',
          errors: errs,
        };
      });
      if (state && (state.done || state.field !== lastField)) break;
      if (state && state.errors.length) break;
      await sleep(150);
    }
    if (!state) throw new Error('the form did not appear');
    if (state.done) break;
    if (state.field === lastField) {
      throw new Error(`step ${lastField} was not accepted: ${state.errors.join('; ') || 'no error shown'}`);
    }
    const field = fieldsById[state.field];
    if (!field) throw new Error(`the widget asks for ${state.field}, not a field of ${run.form_id}`);
    const answer = answers[state.field];
    if (answer === undefined) throw new Error(`no answer for ${state.field} (${field.type})`);
    const step = { field: state.field, type: field.type, progress: state.progress, prompt: state.prompt, answer };
    const scope = widget.locator('.hairline-form');

    if (field.type === 'select') {
      const option = (field.options || []).find((o) => (o.value ?? o) === answer);
      const label = option?.label ?? answer;
      await scope
        .locator(`[aria-labelledby="label-${state.field}"]`)
        .getByRole('button', { name: label, exact: true })
        .click({ timeout: left(10_000) });
      step.clicked = label;
    } else if (field.type === 'name' || field.type === 'address' || field.type === 'phone_with_consent') {
      for (const sub of field.subfields || []) {
        const value = answer[sub.id] ?? '';
        if (value !== '') await scope.locator(`input[name="${sub.id}"]`).fill(value, { timeout: left(10_000) });
      }
      await scope.locator('.hairline-composite .hairline-form-submit').click({ timeout: left(10_000) });
    } else {
      const input = scope.locator(`[name="${state.field}"]`);
      await input.fill(String(answer), { timeout: left(10_000) });
      await scope.locator('.hairline-form-submit').click({ timeout: left(10_000) });
    }
    result.steps.push(step);
    log(`${state.progress}: ${state.field} (${field.type}) <- ${JSON.stringify(answer)}`);
    lastField = state.field;
  }

  await widget.locator('.hairline-completion').waitFor({ timeout: left(15_000) });
  log('completion card shown');

  // The widget submits in the background; wait for its answer.
  const until = Date.now() + left(30_000);
  let submit = null;
  while (Date.now() < until) {
    submit = result.network.find((e) => e.body && e.body.includes('"submit_form"') && e.response !== undefined);
    if (submit) break;
    await sleep(200);
  }
  if (!submit) {
    const sent = result.network.find((e) => e.body && e.body.includes('"submit_form"'));
    throw new Error(sent ? `the submit got no answer (${sent.failure || 'pending'})` : 'the widget sent no submit');
  }
  const frames = (submit.response || '')
    .split('\n')
    .filter((l) => l.startsWith('data: ') && l !== 'data: [DONE]')
    .map((l) => {
      try {
        return JSON.parse(l.slice(6));
      } catch {
        return l.slice(6);
      }
    });
  const complete = frames.find((x) => x && x.type === 'form_complete');
  let requestBody = null;
  try {
    requestBody = JSON.parse(submit.body);
  } catch {
    requestBody = submit.body;
  }
  result.submit = {
    url: submit.url,
    origin: submit.origin,
    status: submit.status,
    request: requestBody,
    frames,
    submission_id: complete?.submissionId || null,
  };
  result.completion_text = (await widget.locator('.hairline-completion').innerText()).slice(0, 4000);
  await page.waitForTimeout(500);
  await page.screenshot({ path: run.screenshot, fullPage: false });
  log('screenshot', run.screenshot);
  result.ok = Boolean(complete) && submit.status === 200;
  if (!result.ok) result.error = `submit answered ${submit.status}: ${(submit.response || '').slice(0, 800)}`;
} catch (err) {
  result.error = err.message.split('\n')[0].slice(0, 1500);
  log('FAILED:', result.error);
  if (page) {
    const failShot = run.screenshot.replace(/\.png$/, '') + '-failed.png';
    await page.screenshot({ path: failShot }).catch(() => {});
    result.screenshot = failShot;
  }
} finally {
  await browser.close().catch(() => {});
  fs.writeFileSync(run.out, JSON.stringify(result, null, 2));
}
process.exit(result.ok ? 0 : 1);
