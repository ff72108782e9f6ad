// tests/browser.js - noVNC in headless Chromium against vncsasl -W -F,
// driven by playwright-core (run by tests/t-novnc.sh):
//
//   node browser.js PLAYWRIGHT_DIR URL OUTDIR DUMMYREF USER PASS VUSER VPASS
//   NOVNC_UI=1 node browser.js PLAYWRIGHT_DIR URL OUTDIR DUMMYREF USER PASS
//
// (NOVNC_UI: URL is noVNC's own vnc.html, e.g. Debian's novnc package; a
// person presses Connect, types into its credentials dialog, and sees the
// screen.)
// A person's steps: open the URL, type a user name and a password, press
// Connect; then the canvas must show the dummy picture (checked pixel by
// pixel by tests/dummyref), a key typed in the page must reach the source
// (the status strip shows it), a wrong password must be refused, a view
// user's keys must not arrive, and the clipboard must come back whole in
// UTF-8 (Extended Clipboard).  Prints "ok NAME" / "FAIL NAME: why".
// Every wait has a timeout.
'use strict';
const path = require('path');
const fs = require('fs');
const { execFileSync } = require('child_process');

const [pwdir, url, outdir, dummyref, user, pass, vuser, vpass] = process.argv.slice(2);
const { chromium } = require(path.join(pwdir, 'node_modules', 'playwright-core'));
const W = 1024, H = 768;
let failed = 0;

function ok(name) { console.log('ok ' + name); }
function fail(name, why) { failed++; console.log('FAIL ' + name + ': ' + String(why).split('\n')[0]); }

// the canvas as RGBA, checked by dummyref: its state, or an error
const CANVAS = process.env.NOVNC_UI ? '#noVNC_container canvas' : '#screen canvas';

async function canvasState(page, name) {
    const b64 = await page.evaluate(([w, h, sel]) => {
        const c = document.querySelector(sel);
        if (!c || c.width !== w || c.height !== h)
            return 'size ' + (c ? c.width + 'x' + c.height : 'no canvas');
        const d = c.getContext('2d').getImageData(0, 0, w, h).data;
        let s = '';
        for (let i = 0; i < d.length; i += 32768)
            s += String.fromCharCode.apply(null, d.subarray(i, i + 32768));
        return btoa(s);
    }, [W, H, CANVAS]);
    if (b64.startsWith('size'))
        return { error: b64 };
    const rgba = Buffer.from(b64, 'base64');
    fs.writeFileSync(path.join(outdir, name + '.rgba'), rgba);
    let out;
    try {
        // RGBA bytes are a little-endian 32-bit pixel: R at 0, G 8, B 16
        out = execFileSync(dummyref, [String(W), String(H), '32', '0', '255', '255',
            '255', '0', '8', '16'], { input: rgba, timeout: 20000 }).toString();
    } catch (e) {
        return { error: (e.stdout || e.message).toString().trim() };
    }
    const st = {};
    for (const kv of out.trim().split(' ').slice(1)) {
        const [k, v] = kv.split('=');
        st[k] = v;
    }
    return st;
}

// poll the canvas until want(state) holds (the picture lags the input)
async function waitState(page, name, want, ms) {
    const end = Date.now() + ms;
    let st;
    do {
        st = await canvasState(page, name);
        if (!st.error && want(st))
            return st;
        await page.waitForTimeout(250);
    } while (Date.now() < end);
    throw new Error(st.error || JSON.stringify(st));
}

async function login(ctx, u, p) {
    const page = await ctx.newPage();
    page.on('console', (m) => fs.appendFileSync(path.join(outdir, 'console.log'),
        m.type() + ': ' + m.text() + '\n'));
    await page.goto(url, { timeout: 20000 });
    await page.fill('#user', u);
    await page.fill('#password', p);
    await page.click('#connect');
    await page.waitForFunction(() => window.vnc && window.vnc.state !== 'connecting' &&
        window.vnc.state !== 'idle', null, { timeout: 20000 });
    return page;
}

// noVNC's own page: Connect, the credentials dialog, the screen
async function ui(ctx) {
    const page = await ctx.newPage();
    try {
        await page.goto(url, { timeout: 20000 });
        await page.click('#noVNC_connect_button', { timeout: 10000 });
        // under load the dialog can still be settling as the fields are
        // typed into (once, "alicesecret" arrived as the user name): fill
        // both until each holds what it should, then log in
        for (let i = 0; ; i++) {
            await page.fill('#noVNC_username_input', user, { timeout: 10000 });
            await page.fill('#noVNC_password_input', pass, { timeout: 10000 });
            if (await page.inputValue('#noVNC_username_input') === user &&
                await page.inputValue('#noVNC_password_input') === pass)
                break;
            if (i === 4)
                throw new Error('the credentials dialog would not keep what was typed');
            await page.waitForTimeout(500);
        }
        await page.click('#noVNC_credentials_button');
        await waitState(page, 'ui', () => true, 15000);
        await page.screenshot({ path: path.join(outdir, 'novnc-ui.png') });
        ok('novnc-ui-login-picture');
    } catch (e) {
        await page.screenshot({ path: path.join(outdir, 'novnc-ui.png') }).catch(() => {});
        fail('novnc-ui-login-picture', e.message);
    }
}

(async () => {
    const browser = await chromium.launch({
        executablePath: '/usr/bin/chromium',
        headless: true,
        timeout: 60000,
        args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
            '--no-first-run', '--disable-background-networking',
            '--disable-component-update', '--disable-sync',
            '--ignore-certificate-errors'],
    });
    const ctx = await browser.newContext({ ignoreHTTPSErrors: true,
        viewport: { width: 1100, height: 880 } });
    if (process.env.NOVNC_UI) {
        await ui(ctx);
        await browser.close();
        process.exit(failed ? 1 : 0);
    }
    try {
        // a person logs in and sees the screen
        let page, st0;
        try {
            page = await login(ctx, user, pass);
            const s = await page.evaluate(() => window.vnc.state + ' ' + window.vnc.reason);
            if (!s.startsWith('connected'))
                throw new Error('state ' + s);
            st0 = await waitState(page, 'login', () => true, 15000);
            await page.screenshot({ path: path.join(outdir, 'novnc.png') });
            ok('novnc-login-picture');
        } catch (e) {
            fail('novnc-login-picture', e.message);
            if (page) await page.screenshot({ path: path.join(outdir, 'novnc.png') });
            throw e;
        }

        // a key typed in the page reaches the source
        try {
            await page.click('#screen canvas', { position: { x: 500, y: 400 } });
            await page.keyboard.press('q');
            const st = await waitState(page, 'key', (s) => s.key === '0x71' &&
                Number(s.nkeys) > Number(st0.nkeys), 10000);
            ok('novnc-key-arrives');
            st0 = st;
        } catch (e) {
            fail('novnc-key-arrives', e.message);
        }

        // UTF-8 clipboard both ways: the dummy echoes what it is given
        try {
            const text = 'Grüße ☺ Ωμέγα\nzweite Zeile';
            await page.evaluate((t) => { window.vnc.clip = null; window.vnc.rfb.clipboardPasteFrom(t); }, text);
            await page.waitForFunction((t) => window.vnc.clip === t, text, { timeout: 10000 });
            const st = await waitState(page, 'clip', (s) => Number(s.ncut) ===
                Buffer.byteLength(text), 10000);
            ok('novnc-clipboard-utf8');
        } catch (e) {
            const got = await page.evaluate(() => window.vnc.clip);
            fail('novnc-clipboard-utf8', e.message + ' got ' + JSON.stringify(got));
        }

        // a wrong password is refused
        try {
            const bad = await login(ctx, user, pass + 'x');
            const s = await bad.evaluate(() => window.vnc.state + ': ' + window.vnc.reason);
            if (!s.startsWith('refused') || !/failed/i.test(s))
                throw new Error(s);
            ok('novnc-wrong-password-refused');
            await bad.close();
        } catch (e) {
            fail('novnc-wrong-password-refused', e.message);
        }

        // a view user sees the screen, and its keys do not arrive
        try {
            const vp = await login(ctx, vuser, vpass);
            const s = await vp.evaluate(() => window.vnc.state);
            if (s !== 'connected')
                throw new Error('state ' + s);
            const before = await waitState(vp, 'view', () => true, 15000);
            await vp.click('#screen canvas', { position: { x: 300, y: 300 } });
            await vp.keyboard.press('z');
            await vp.waitForTimeout(1500);
            const after = await waitState(vp, 'view2', () => true, 5000);
            if (after.key === '0x7a' || after.nkeys !== before.nkeys)
                throw new Error('the key arrived: ' + JSON.stringify(after));
            if (after.ptr !== before.ptr)
                throw new Error('the pointer moved: ' + JSON.stringify(after));
            ok('novnc-view-user-input-dropped');
            await vp.close();
        } catch (e) {
            fail('novnc-view-user-input-dropped', e.message);
        }
    } catch (e) {
        // already reported
    } finally {
        await browser.close();
    }
    process.exit(failed ? 1 : 0);
})().catch((e) => { fail('novnc-browser', e.message); process.exit(1); });
