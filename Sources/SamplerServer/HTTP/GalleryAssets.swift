/// The gallery page served at `/`: plain HTML, CSS and JavaScript embedded in the binary (no CDN, no build step).
///
/// The page lists `GET /v1/models` as one card per model, shows a 4x4 grid from
/// `GET /v1/models/{model}/samples.png?seed=S&count=16&version=V` (fetched with `fetch()` so that a bearer token
/// stored under `localStorage["onestep.token"]` can go with it, shown through a `blob:` URL) and polls
/// `GET /v1/stats` every 2 seconds for small canvas charts. Serve `html` at `/` (text/html), `css` at
/// `/gallery.css` (text/css) and `js` at `/gallery.js` (text/javascript), all `charset=utf-8`, without auth.
/// The three are pure ASCII. `clients/python/tests/browser_gallery.py` checks the page in headless Chromium.
enum GalleryAssets {
    /// The page at `/`; it links `/gallery.css` and `/gallery.js`.
    static let html: String = #"""
        <!doctype html>
        <html lang="en">
        <head>
            <meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>OneStep gallery</title>
            <link rel="icon" href="data:,">
            <link rel="stylesheet" href="/gallery.css">
            <script src="/gallery.js" defer></script>
        </head>
        <body>
            <header class="top">
                <h1>OneStep</h1>
                <nav class="model-nav" id="model-nav" aria-label="models on this server">
                    <span class="muted">loading models&hellip;</span>
                </nav>
                <button type="button" class="link" id="token-toggle" aria-expanded="false" aria-controls="token-box">
                    settings
                </button>
            </header>
            <form class="token-box" id="token-box" hidden>
                <p id="token-message"></p>
                <label for="token-input">Bearer token</label>
                <input id="token-input" type="password" autocomplete="off" spellcheck="false"
                    placeholder="paste the token">
                <button type="submit" class="primary" id="token-use">use token</button>
                <button type="button" id="token-clear">forget token</button>
            </form>
            <main>
                <div class="error" id="global-error" role="alert" hidden></div>
                <p class="notice" id="empty" hidden>This server has no models.</p>
                <noscript><p class="error">The gallery needs JavaScript.</p></noscript>
                <div class="cards" id="cards"></div>
            </main>
            <footer>
                Each grid shows 16 samples for one seed (<code>GET /v1/models/{model}/samples.png</code>),
                drawn at 4&times;.
                Metrics refresh every 2 seconds from <code>GET /v1/stats</code>.
            </footer>
        </body>
        </html>
        """#

    /// The stylesheet at `/gallery.css`.
    static let css: String = #"""
        :root {
            color-scheme: light;
            --bg: #f5f6f8;
            --card: #ffffff;
            --fg: #1f2328;
            --muted: #5f6872;
            --border: #d9dee4;
            --accent: #2557d6;
            --accent-fg: #ffffff;
            --error-bg: #fff1f0;
            --error-fg: #a8261b;
            --error-border: #f5c2bd;
            --c-rps: #2557d6;
            --c-p50: #0f8a5f;
            --c-p99: #d97706;
            --c-queued: #7c3aed;
            --c-batch: #2557d6;
            --c-grid: #e6e9ee;
            --c-text: #5f6872;
        }

        [hidden] {
            display: none !important;
        }

        *,
        *::before,
        *::after {
            box-sizing: border-box;
        }

        body {
            margin: 0;
            background: var(--bg);
            color: var(--fg);
            font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, "Noto Sans",
                "Liberation Sans", sans-serif;
            font-size: 15px;
            line-height: 1.45;
        }

        code {
            font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace;
            font-size: 0.9em;
        }

        .muted {
            color: var(--muted);
        }

        .top {
            display: flex;
            flex-wrap: wrap;
            align-items: center;
            gap: 0.5rem 1.25rem;
            padding: 0.8rem 1.5rem;
            background: var(--card);
            border-bottom: 1px solid var(--border);
        }

        .top h1 {
            margin: 0;
            font-size: 1.45rem;
            letter-spacing: -0.01em;
        }

        .model-nav {
            display: flex;
            flex: 1;
            flex-wrap: wrap;
            align-items: center;
            gap: 0.4rem;
            font-size: 0.9rem;
        }

        .model-nav a {
            padding: 0.1rem 0.6rem;
            border: 1px solid var(--border);
            border-radius: 999px;
            color: var(--fg);
            text-decoration: none;
            background: #f8f9fb;
        }

        .model-nav a:hover,
        .model-nav a:focus-visible {
            border-color: var(--accent);
            color: var(--accent);
        }

        button.link {
            border: 0;
            background: none;
            padding: 0.2rem 0.3rem;
            color: var(--accent);
            font-size: 0.9rem;
            text-decoration: underline;
            cursor: pointer;
        }

        .token-box {
            display: flex;
            flex-wrap: wrap;
            align-items: center;
            gap: 0.5rem 0.75rem;
            margin: 0;
            padding: 0.75rem 1.5rem;
            background: #fffbea;
            border-bottom: 1px solid #eedc9a;
        }

        .token-box p {
            flex-basis: 100%;
            margin: 0;
        }

        .token-box input {
            min-width: 18rem;
        }

        main {
            max-width: 1440px;
            margin: 0 auto;
            padding: 1.25rem 1.5rem 1.5rem;
        }

        footer {
            max-width: 1440px;
            margin: 0 auto;
            padding: 0 1.5rem 2rem;
            color: var(--muted);
            font-size: 0.8rem;
        }

        .cards {
            display: grid;
            grid-template-columns: repeat(auto-fill, minmax(min(100%, 500px), 1fr));
            align-items: start;
            gap: 1.25rem;
        }

        .card {
            padding: 1rem 1.1rem 1.1rem;
            background: var(--card);
            border: 1px solid var(--border);
            border-radius: 10px;
            box-shadow: 0 1px 2px rgba(16, 24, 40, 0.05);
        }

        .card-head {
            display: flex;
            flex-wrap: wrap;
            align-items: baseline;
            gap: 0.4rem 0.6rem;
        }

        .card-head h2 {
            margin: 0;
            font-size: 1.15rem;
            overflow-wrap: anywhere;
        }

        .badges {
            display: inline-flex;
            flex-wrap: wrap;
            gap: 0.3rem;
        }

        .badge {
            display: inline-block;
            padding: 0 0.45rem;
            border: 1px solid #c9d4f5;
            border-radius: 999px;
            background: #eef2fd;
            color: #27408f;
            font-size: 0.72rem;
            font-weight: 600;
            line-height: 1.5;
        }

        .badge.version {
            border-color: #cfd6de;
            background: #f1f3f6;
            color: #38424d;
        }

        .badge.default {
            border-color: #b9e2cf;
            background: #ebf8f1;
            color: #11603f;
        }

        .kind {
            margin: 0.2rem 0 0;
            color: var(--muted);
            font-size: 0.85rem;
        }

        .prov {
            display: grid;
            grid-template-columns: max-content 1fr;
            gap: 0.1rem 0.9rem;
            margin: 0.6rem 0 0.2rem;
            font-size: 0.9rem;
        }

        .prov dt {
            color: var(--muted);
        }

        .prov dd {
            margin: 0;
            font-weight: 600;
            overflow-wrap: anywhere;
        }

        .prov.more {
            margin: 0.3rem 0 0.3rem 1rem;
            font-size: 0.8rem;
        }

        .prov.more dd {
            font-weight: 400;
        }

        details {
            margin-top: 0.2rem;
            color: var(--muted);
            font-size: 0.82rem;
        }

        summary {
            cursor: pointer;
            width: max-content;
            max-width: 100%;
        }

        .version-list {
            margin: 0.3rem 0 0.3rem 1rem;
            padding: 0;
            list-style: none;
        }

        .version-list li {
            margin: 0.15rem 0;
            overflow-wrap: anywhere;
        }

        .state {
            font-weight: 600;
        }

        .state-ready {
            color: #11603f;
        }

        .state-failed {
            color: var(--error-fg);
        }

        .controls {
            display: flex;
            flex-wrap: wrap;
            align-items: flex-end;
            gap: 0.5rem 0.6rem;
            margin: 0.8rem 0 0.6rem;
        }

        .controls label {
            display: flex;
            flex-direction: column;
            gap: 0.15rem;
            color: var(--muted);
            font-size: 0.75rem;
        }

        input,
        select,
        button {
            font: inherit;
            font-size: 0.9rem;
        }

        input,
        select {
            padding: 0.3rem 0.45rem;
            border: 1px solid #c3cad3;
            border-radius: 6px;
            background: #ffffff;
            color: var(--fg);
        }

        input.seed {
            width: 14ch;
            font-variant-numeric: tabular-nums;
        }

        input[aria-invalid="true"] {
            border-color: var(--error-fg);
            outline-color: var(--error-fg);
        }

        button {
            padding: 0.3rem 0.75rem;
            border: 1px solid #c3cad3;
            border-radius: 6px;
            background: #f6f8fa;
            color: var(--fg);
            cursor: pointer;
        }

        button:hover:not(:disabled) {
            border-color: #98a2ae;
        }

        button.primary {
            border-color: var(--accent);
            background: var(--accent);
            color: var(--accent-fg);
        }

        button:disabled,
        select:disabled,
        input:disabled {
            cursor: not-allowed;
            opacity: 0.55;
        }

        :focus-visible {
            outline: 2px solid var(--accent);
            outline-offset: 1px;
        }

        .error {
            margin: 0.5rem 0;
            padding: 0.5rem 0.75rem;
            border: 1px solid var(--error-border);
            border-radius: 6px;
            background: var(--error-bg);
            color: var(--error-fg);
            font-size: 0.88rem;
            overflow-wrap: anywhere;
        }

        .notice {
            margin: 0.5rem 0;
            padding: 0.5rem 0.75rem;
            border: 1px solid var(--border);
            border-radius: 6px;
            background: #f8f9fb;
            color: var(--muted);
            font-size: 0.88rem;
        }

        .grid-wrap {
            display: flex;
            flex-direction: column;
            align-items: center;
            gap: 0.35rem;
            margin: 0;
            padding: 0.75rem;
            border-radius: 8px;
            background: #f0f2f5;
        }

        img.grid {
            display: block;
            width: 448px;
            max-width: 100%;
            height: auto;
            aspect-ratio: auto 1 / 1;
            border-radius: 3px;
            background: #16181c;
            image-rendering: pixelated;
            transition: opacity 0.15s;
        }

        .card.loading img.grid {
            opacity: 0.55;
        }

        .caption {
            min-height: 1.2em;
            color: var(--muted);
            font-size: 0.8rem;
            font-variant-numeric: tabular-nums;
        }

        .card.loading .caption::after {
            content: " \22EF";
        }

        .metrics {
            margin-top: 0.9rem;
            padding-top: 0.7rem;
            border-top: 1px solid var(--border);
        }

        .metrics h3 {
            margin: 0 0 0.5rem;
            color: var(--muted);
            font-size: 0.75rem;
            font-weight: 600;
            letter-spacing: 0.05em;
            text-transform: uppercase;
        }

        .charts {
            display: grid;
            grid-template-columns: repeat(auto-fit, minmax(200px, 1fr));
            gap: 0.7rem 1rem;
        }

        .chart {
            margin: 0;
            min-width: 0;
        }

        .chart figcaption {
            display: flex;
            flex-wrap: wrap;
            justify-content: space-between;
            gap: 0 0.5rem;
            color: var(--muted);
            font-size: 0.78rem;
        }

        .chart-value {
            color: var(--fg);
            font-weight: 600;
            font-variant-numeric: tabular-nums;
        }

        .chart-body {
            display: flex;
            align-items: stretch;
            gap: 0.3rem;
            margin-top: 0.15rem;
        }

        .axis {
            display: flex;
            flex-direction: column;
            justify-content: space-between;
            min-width: 2.6em;
            color: var(--muted);
            font-size: 0.66rem;
            line-height: 1;
            text-align: right;
            font-variant-numeric: tabular-nums;
        }

        .chart canvas {
            display: block;
            flex: 1;
            min-width: 0;
            width: 100%;
            height: 56px;
            border: 1px solid #e6e9ee;
            border-radius: 4px;
            background: #fbfcfd;
        }

        .legend {
            display: flex;
            gap: 0.7rem;
            margin-top: 0.1rem;
            padding-left: 2.9em;
            color: var(--muted);
            font-size: 0.7rem;
        }

        .swatch {
            display: inline-block;
            width: 0.9em;
            height: 0.22em;
            margin-right: 0.3em;
            vertical-align: middle;
            border-radius: 1px;
        }

        .swatch.p50 {
            background: var(--c-p50);
        }

        .swatch.p99 {
            background: var(--c-p99);
        }

        .metrics-status {
            margin: 0.5rem 0 0;
            color: var(--muted);
            font-size: 0.75rem;
            font-variant-numeric: tabular-nums;
        }

        @media (max-width: 560px) {
            .top,
            main,
            footer,
            .token-box {
                padding-left: 0.75rem;
                padding-right: 0.75rem;
            }

            .token-box input {
                min-width: 0;
                width: 100%;
            }
        }
        """#

    /// The script at `/gallery.js`.
    static let js: String = #"""
        // OneStep gallery: one card per model with a grid of samples and live metrics, all from the daemon's /v1 API.
        // Plain browser JavaScript, no dependencies. Every /v1 call goes through fetch() so that a bearer token can go
        // with it; images are shown from blob: URLs.
        "use strict";

        (() => {
            const TOKEN_KEY = "onestep.token";
            const GRID_COUNT = 16;
            const ZOOM = 4;
            const HISTORY = 60;
            const STATS_EVERY_MS = 2000;
            const MODELS_EVERY_MS = 15000;
            const MODELS_WAITING_MS = 3000;
            const U64 = 1n << 64n;
            const DASH = "\u2013";
            const ELLIPSIS = "\u2026";
            const TIMES = "\u00d7";

            const cards = new Map();
            const globalErrors = new Map();
            let memoryToken = "";
            let statsUpdates = 0;
            let modelsTimer = null;
            let resizeTimer = null;
            let palette = null;

            const byId = (id) => document.getElementById(id);

            /** Creates an element; attrs: class, text, dataset, on<event> handlers, anything else as an attribute. */
            function el(tag, attrs = {}, ...children) {
                const node = document.createElement(tag);
                for (const [key, value] of Object.entries(attrs)) {
                    if (value === undefined || value === null || value === false) continue;
                    if (key === "class") node.className = value;
                    else if (key === "text") node.textContent = value;
                    else if (key === "dataset") Object.assign(node.dataset, value);
                    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
                    else node.setAttribute(key, value === true ? "" : String(value));
                }
                for (const child of children.flat()) {
                    if (child === undefined || child === null || child === false) continue;
                    node.append(child instanceof Node ? child : String(child));
                }
                return node;
            }

            // ---- token -------------------------------------------------------------------------------------------

            function getToken() {
                try {
                    return localStorage.getItem(TOKEN_KEY) || "";
                } catch {
                    return memoryToken;
                }
            }

            function setToken(token) {
                memoryToken = token;
                try {
                    if (token) localStorage.setItem(TOKEN_KEY, token);
                    else localStorage.removeItem(TOKEN_KEY);
                } catch {
                    // Storage is off (private mode, policy): the in-memory copy lasts until the page reloads.
                }
            }

            /** Takes `?token=...` from the address once: stores it and removes it from the address bar. */
            function takeTokenFromAddress() {
                const url = new URL(window.location.href);
                if (!url.searchParams.has("token")) return;
                setToken((url.searchParams.get("token") || "").trim());
                url.searchParams.delete("token");
                const rest = url.searchParams.toString();
                history.replaceState(history.state, "", url.pathname + (rest ? `?${rest}` : "") + url.hash);
            }

            function showTokenBox(message) {
                const box = byId("token-box");
                const wasHidden = box.hidden;
                byId("token-message").textContent = message;
                box.hidden = false;
                byId("token-toggle").setAttribute("aria-expanded", "true");
                const idle = !document.activeElement || document.activeElement === document.body;
                if (wasHidden && idle) byId("token-input").focus();
            }

            function hideTokenBox() {
                byId("token-box").hidden = true;
                byId("token-toggle").setAttribute("aria-expanded", "false");
            }

            function wireTokenBox() {
                byId("token-toggle").addEventListener("click", () => {
                    if (!byId("token-box").hidden) {
                        hideTokenBox();
                        return;
                    }
                    showTokenBox(getToken()
                        ? "A bearer token is stored in this browser. Enter another one to replace it."
                        : "No bearer token is stored in this browser. Enter one if the server asks for it.");
                    byId("token-input").focus();
                });
                byId("token-box").addEventListener("submit", (event) => {
                    event.preventDefault();
                    setToken(byId("token-input").value.trim());
                    byId("token-input").value = "";
                    hideTokenBox();
                    reloadAll();
                });
                byId("token-clear").addEventListener("click", () => {
                    setToken("");
                    byId("token-input").value = "";
                    hideTokenBox();
                    reloadAll();
                });
            }

            // ---- API ---------------------------------------------------------------------------------------------

            class ApiError extends Error {
                constructor(status, message) {
                    super(message);
                    this.status = status;
                }
            }

            /** The message of an error answer: the `error` field of its JSON body, else its text, else the status. */
            async function errorText(response) {
                let body = "";
                try {
                    body = await response.text();
                } catch {
                    // Keep the status line alone.
                }
                try {
                    const parsed = JSON.parse(body);
                    if (parsed && typeof parsed.error === "string" && parsed.error) return parsed.error;
                } catch {
                    // Not JSON: use the raw text.
                }
                const text = body.trim().slice(0, 300);
                return text || `${response.status} ${response.statusText}`.trim();
            }

            async function api(path, accept = "application/json") {
                const headers = { Accept: accept };
                const token = getToken();
                if (token) headers.Authorization = `Bearer ${token}`;
                let response;
                try {
                    response = await fetch(path, { headers, cache: "no-store" });
                } catch (error) {
                    throw new ApiError(0, `cannot reach the server (${error.message})`);
                }
                if (response.ok) return response;
                const message = await errorText(response);
                if (response.status === 401) {
                    showTokenBox(token
                        ? `The server refused the stored token (${message}). Enter another one.`
                        : `This server needs a bearer token (${message}).`);
                }
                throw new ApiError(response.status, `${message} (HTTP ${response.status})`);
            }

            async function apiJSON(path) {
                const response = await api(path);
                try {
                    return await response.json();
                } catch (error) {
                    throw new ApiError(response.status, `the answer to ${path} is not JSON (${error.message})`);
                }
            }

            function setGlobalError(source, message) {
                if (message) globalErrors.set(source, message);
                else globalErrors.delete(source);
                const box = byId("global-error");
                box.replaceChildren(...[...globalErrors.values()].map((text) => el("div", { text })));
                box.hidden = globalErrors.size === 0;
            }

            function setCardError(card, message) {
                card.error.textContent = message || "";
                card.error.hidden = !message;
            }

            // ---- models and cards --------------------------------------------------------------------------------

            async function loadModels() {
                let data;
                try {
                    data = await apiJSON("/v1/models");
                } catch (error) {
                    setGlobalError("models", `Could not list the models: ${error.message}`);
                    if (cards.size === 0) {
                        byId("model-nav").replaceChildren(el("span", { class: "muted", text: "models unavailable" }));
                    }
                    return false;
                }
                setGlobalError("models", "");
                const models = (Array.isArray(data && data.models) ? data.models : [])
                    .filter((model) => model && typeof model.name === "string");
                const names = new Set(models.map((model) => model.name));
                for (const [name, card] of cards) {
                    if (!names.has(name)) removeCard(card);
                }
                for (const model of models) upsertCard(model);
                const list = byId("cards");
                const order = models.map((model) => model.name);
                const shown = [...list.children].map((node) => node.dataset.model);
                if (order.join("\n") !== shown.join("\n")) {
                    for (const name of order) list.append(cards.get(name).root);
                }
                renderNav(models);
                byId("empty").hidden = models.length > 0;
                return true;
            }

            function renderNav(models) {
                const nav = byId("model-nav");
                if (!models.length) {
                    nav.replaceChildren(el("span", { class: "muted", text: "no models" }));
                    return;
                }
                nav.replaceChildren(
                    el("span", { class: "muted", text: `${models.length} model${models.length === 1 ? "" : "s"}:` }),
                    ...models.map((model) => el("a", {
                        href: `#${encodeURIComponent(`model-${model.name}`)}`,
                        text: model.default_version !== undefined
                            ? `${model.name} v${model.default_version}`
                            : model.name,
                    })));
            }

            function readyVersions(model) {
                const versions = Array.isArray(model.versions) ? model.versions : [];
                return versions.filter((v) => v && v.state === "READY").sort((a, b) => b.version - a.version);
            }

            function versionText(v, model) {
                const labels = Array.isArray(v.labels) && v.labels.length ? ` \u00b7 ${v.labels.join(", ")}` : "";
                return `v${v.version}${labels}${v.version === model.default_version ? " (default)" : ""}`;
            }

            function createCard(name) {
                const data = { model: name };
                const card = {
                    name, model: null, version: null, userPicked: false, seed: 0n, loadSeq: 0,
                    pending: null, shownURL: null, shownCaption: "", signature: null,
                };
                card.badges = el("span", { class: "badges" });
                card.kind = el("p", { class: "kind", hidden: true });
                card.prov = el("dl", { class: "prov", hidden: true });
                card.provMore = el("dl", { class: "prov more" });
                card.provMoreSummary = el("summary", { text: "more provenance" });
                card.provMoreBox = el("details", { class: "prov-more", hidden: true },
                    card.provMoreSummary, card.provMore);
                card.versionList = el("ul", { class: "version-list" });
                card.versionsSummary = el("summary", { text: "all versions" });
                card.versionsBox = el("details", { class: "versions" }, card.versionsSummary, card.versionList);
                card.select = el("select", { class: "version", dataset: data, onchange: () => pickVersion(card) });
                card.seedInput = el("input", {
                    class: "seed", dataset: data, type: "text", inputmode: "numeric", autocomplete: "off",
                    spellcheck: "false", value: "0", onchange: () => typeSeed(card),
                });
                card.next = el("button", {
                    class: "next-seed primary", type: "button", dataset: data, text: "next seed",
                    onclick: () => setSeed(card, (card.seed + 1n) % U64),
                });
                card.random = el("button", {
                    class: "random-seed", type: "button", dataset: data, text: "random seed",
                    onclick: () => setSeed(card, randomSeed()),
                });
                card.notice = el("p", { class: "notice", hidden: true });
                card.error = el("p", { class: "error", role: "alert", hidden: true });
                card.img = el("img", {
                    class: "grid", dataset: { model: name, loaded: "0" }, alt: `samples from ${name}`,
                });
                card.img.addEventListener("load", () => gridLoaded(card));
                card.img.addEventListener("error", () => gridBroken(card));
                card.caption = el("figcaption", { class: "caption", "aria-live": "polite" });
                card.figure = el("figure", { class: "grid-wrap" }, card.img, card.caption);
                card.metrics = createMetrics(card);
                const rootAttrs = { class: "card", id: `model-${name}`, dataset: data, "aria-label": `model ${name}` };
                card.root = el("article", rootAttrs,
                    el("header", { class: "card-head" }, el("h2", { text: name }), card.badges),
                    card.kind, card.prov, card.provMoreBox, card.versionsBox,
                    el("div", { class: "controls" },
                        el("label", {}, "version", card.select),
                        el("label", {}, "seed", card.seedInput),
                        card.next, card.random),
                    card.notice, card.error,
                    card.figure,
                    card.metrics.root);
                return card;
            }

            function removeCard(card) {
                card.loadSeq += 1;
                if (card.pending) URL.revokeObjectURL(card.pending.url);
                if (card.shownURL) URL.revokeObjectURL(card.shownURL);
                card.root.remove();
                cards.delete(card.name);
            }

            function upsertCard(model) {
                let card = cards.get(model.name);
                const fresh = !card;
                if (fresh) {
                    card = createCard(model.name);
                    cards.set(model.name, card);
                    byId("cards").append(card.root);
                }
                card.model = model;
                const ready = readyVersions(model);
                const isReady = (n) => ready.some((v) => v.version === n);
                let version = card.version;
                if (!card.userPicked || !isReady(version)) {
                    card.userPicked = false;
                    const fallback = ready.length ? ready[0].version : null;
                    version = isReady(model.default_version) ? model.default_version : fallback;
                }
                const signature = JSON.stringify([
                    model.default_version, ready.map((v) => [v.version, v.labels || []]),
                ]);
                if (signature !== card.signature) {
                    card.signature = signature;
                    card.select.replaceChildren(...(ready.length
                        ? ready.map((v) => el("option", { value: v.version, text: versionText(v, model) }))
                        : [el("option", { value: "", text: "none ready" })]));
                }
                const changed = version !== card.version;
                card.version = version;
                const usable = version !== null;
                if (usable) card.select.value = String(version);
                for (const control of [card.select, card.seedInput, card.next, card.random]) control.disabled = !usable;
                card.notice.textContent = usable ? "" : waitingText(model);
                card.notice.hidden = usable;
                card.figure.hidden = !usable && !card.shownURL;
                renderMeta(card);
                if (usable && (fresh || changed)) loadGrid(card);
            }

            function waitingText(model) {
                const versions = Array.isArray(model.versions) ? model.versions : [];
                const states = versions.map((v) => `v${v.version} ${v.state}${v.reason ? ` (${v.reason})` : ""}`);
                return `No version is READY yet${states.length ? `: ${states.join(", ")}` : ""}. `
                    + "The page asks again every few seconds.";
            }

            function renderMeta(card) {
                const model = card.model;
                const versions = Array.isArray(model.versions) ? model.versions : [];
                const info = versions.find((v) => v && v.version === card.version) || null;

                const badges = [];
                if (info) {
                    badges.push(el("span", { class: "badge version", text: `v${info.version}` }));
                    for (const label of Array.isArray(info.labels) ? info.labels : []) {
                        badges.push(el("span", { class: "badge", text: String(label) }));
                    }
                    if (info.version === model.default_version) {
                        badges.push(el("span", { class: "badge default", text: "default" }));
                    }
                }
                card.badges.replaceChildren(...badges);

                const facts = [];
                if (info) {
                    if (info.kind) facts.push(String(info.kind));
                    if (Array.isArray(info.sample_shape)) facts.push(`samples ${info.sample_shape.join(TIMES)}`);
                    if (typeof info.nfe === "number") {
                        facts.push(`${info.nfe} network evaluation${info.nfe === 1 ? "" : "s"} per sample`);
                    }
                    if (typeof info.num_classes === "number" && info.num_classes > 0) {
                        facts.push(`${info.num_classes} classes`);
                    }
                }
                card.kind.textContent = facts.join(" \u00b7 ");
                card.kind.hidden = !facts.length;

                const prov = info && info.provenance && typeof info.provenance === "object" ? info.provenance : {};
                const main = [["method", "Method"], ["teacher", "Teacher"], ["fd_lenet", "FD_LeNet"]];
                const pair = (label, value) => [el("dt", { text: label }), el("dd", { text: String(value) })];
                const shown = main.filter(([key]) => key in prov);
                card.prov.replaceChildren(...shown.flatMap(([key, label]) => pair(label, prov[key])));
                card.prov.hidden = card.prov.childElementCount === 0;
                const rest = Object.keys(prov).filter((key) => !main.some(([known]) => known === key)).sort();
                card.provMore.replaceChildren(...rest.flatMap((key) => pair(key, prov[key])));
                card.provMoreSummary.textContent = `more provenance (${rest.length})`;
                card.provMoreBox.hidden = rest.length === 0;

                const sorted = versions.filter(Boolean).slice().sort((a, b) => b.version - a.version);
                card.versionList.replaceChildren(...sorted.map((v) => el("li", {},
                    el("span", { class: "badge version", text: `v${v.version}` }), " ",
                    el("span", { class: `state state-${stateClass(v.state)}`, text: String(v.state) }),
                    Array.isArray(v.labels) && v.labels.length ? ` \u00b7 ${v.labels.join(", ")}` : "",
                    v.version === model.default_version ? " \u00b7 default" : "",
                    v.reason ? ` ${DASH} ${v.reason}` : "")));
                card.versionsSummary.textContent = `all versions (${sorted.length})`;
            }

            function stateClass(state) {
                return String(state).toLowerCase().replace(/[^a-z]/g, "");
            }

            function pickVersion(card) {
                const version = Number(card.select.value);
                if (!Number.isInteger(version)) return;
                card.version = version;
                card.userPicked = true;
                renderMeta(card);
                loadGrid(card);
            }

            // ---- seeds and sample grids --------------------------------------------------------------------------

            function parseSeed(text) {
                const trimmed = String(text).trim();
                if (!/^[0-9]{1,20}$/.test(trimmed)) return null;
                const value = BigInt(trimmed);
                return value < U64 ? value : null;
            }

            function randomSeed() {
                const words = new Uint32Array(1);
                crypto.getRandomValues(words);
                return BigInt(words[0]);
            }

            function typeSeed(card) {
                const seed = parseSeed(card.seedInput.value);
                if (seed === null) {
                    card.seedInput.setAttribute("aria-invalid", "true");
                    setCardError(card, `The seed must be a whole number from 0 to ${U64 - 1n}.`);
                    return;
                }
                setSeed(card, seed);
            }

            function setSeed(card, seed) {
                card.seed = seed;
                card.seedInput.value = seed.toString();
                card.seedInput.removeAttribute("aria-invalid");
                loadGrid(card);
            }

            async function loadGrid(card) {
                if (card.version === null) return;
                const seq = ++card.loadSeq;
                const seed = card.seed;
                const version = card.version;
                card.root.classList.add("loading");
                card.img.dataset.loaded = "0";
                card.img.setAttribute("aria-busy", "true");
                card.caption.textContent = `loading seed ${seed}${ELLIPSIS}`;
                setCardError(card, "");
                const query = new URLSearchParams({
                    seed: seed.toString(), count: String(GRID_COUNT), version: String(version),
                });
                const path = `/v1/models/${encodeURIComponent(card.name)}/samples.png?${query}`;
                let blob;
                let served;
                try {
                    const response = await api(path, "image/png");
                    served = response.headers.get("X-OneStep-Model-Version");
                    blob = await response.blob();
                } catch (error) {
                    if (seq !== card.loadSeq) return;
                    finishLoad(card, "error");
                    setCardError(card, `Samples for seed ${seed}: ${error.message}`);
                    return;
                }
                if (seq !== card.loadSeq) return;
                if (card.pending) URL.revokeObjectURL(card.pending.url);
                const url = URL.createObjectURL(blob);
                card.pending = { url, seed, version: served || String(version) };
                card.figure.hidden = false;
                card.img.src = url;
            }

            function finishLoad(card, loaded) {
                card.root.classList.remove("loading");
                card.img.removeAttribute("aria-busy");
                if (loaded !== "1") card.caption.textContent = card.shownCaption;
                card.img.dataset.loaded = loaded;
            }

            function gridLoaded(card) {
                const pending = card.pending;
                const img = card.img;
                if (!pending || img.src !== pending.url) return;
                card.pending = null;
                if (card.shownURL && card.shownURL !== pending.url) URL.revokeObjectURL(card.shownURL);
                card.shownURL = pending.url;
                img.style.width = `${img.naturalWidth * ZOOM}px`;
                img.alt = `${GRID_COUNT} samples from ${card.name} v${pending.version}, seed ${pending.seed}`;
                img.dataset.version = pending.version;
                img.dataset.seed = pending.seed.toString();
                card.shownCaption = `seed ${pending.seed} \u00b7 v${pending.version} \u00b7 `
                    + `${img.naturalWidth}${TIMES}${img.naturalHeight} px at ${ZOOM}${TIMES}`;
                card.caption.textContent = card.shownCaption;
                finishLoad(card, "1");
            }

            function gridBroken(card) {
                const pending = card.pending;
                if (!pending || card.img.src !== pending.url) return;
                card.pending = null;
                URL.revokeObjectURL(pending.url);
                if (card.shownURL) card.img.src = card.shownURL;
                finishLoad(card, "error");
                setCardError(card, `The image the server sent for seed ${pending.seed} could not be decoded.`);
            }

            // ---- metrics -----------------------------------------------------------------------------------------

            const CHARTS = [
                { key: "rps", title: "requests/s", series: ["rps"] },
                { key: "latency", title: "latency (ms)", series: ["p50", "p99"] },
                { key: "queued", title: "queued samples", series: ["queued"] },
                { key: "batch", title: "batch sizes", series: [] },
            ];

            function createMetrics(card) {
                const charts = {};
                const figures = CHARTS.map((spec) => {
                    const chart = {
                        spec,
                        value: el("span", { class: "chart-value", text: DASH }),
                        max: el("span", { class: "axis-max" }),
                        min: el("span", { class: "axis-min" }),
                        canvas: el("canvas", { role: "img", "aria-label": `${spec.title}: no data yet` }),
                    };
                    charts[spec.key] = chart;
                    const legend = spec.series.length > 1
                        ? el("div", { class: "legend", "aria-hidden": "true" },
                            spec.series.map((key) => el("span", {}, el("i", { class: `swatch ${key}` }), key)))
                        : null;
                    return el("figure", { class: `chart chart-${spec.key}`, dataset: { chart: spec.key } },
                        el("figcaption", {}, el("span", { class: "chart-title", text: spec.title }), chart.value),
                        el("div", { class: "chart-body" },
                            el("div", { class: "axis", "aria-hidden": "true" }, chart.max, chart.min), chart.canvas),
                        legend);
                });
                const status = el("p", { class: "metrics-status", text: `waiting for /v1/stats${ELLIPSIS}` });
                const root = el("section", {
                    class: "metrics", dataset: { model: card.name }, "aria-label": `metrics for ${card.name}`,
                }, el("h3", { text: "live metrics" }), el("div", { class: "charts" }, figures), status);
                return { root, charts, status, history: [], latest: null, window: null };
            }

            async function pollStats() {
                if (!document.hidden && cards.size > 0) {
                    try {
                        ingestStats(await apiJSON("/v1/stats"));
                        setGlobalError("stats", "");
                    } catch (error) {
                        setGlobalError("stats", `Could not read the metrics: ${error.message}`);
                    }
                }
                setTimeout(pollStats, STATS_EVERY_MS);
            }

            const finite = (value) => (typeof value === "number" && Number.isFinite(value) ? value : null);
            const count = (value) => finite(Number(value)) ?? 0;

            /** One point per model: rates, queue and batch counts summed over versions, latencies the worst one's. */
            function aggregate(entries, time) {
                const point = {
                    time, rps: 0, sps: 0, queued: 0, p50: null, p99: null, batch: new Map(),
                    success: 0, fail: 0, versions: [],
                };
                for (const entry of entries) {
                    point.rps += count(entry.requests_per_second);
                    point.sps += count(entry.samples_per_second);
                    point.queued += count(entry.queued_samples);
                    point.success += count(entry.success);
                    point.fail += count(entry.fail);
                    for (const key of ["p50", "p99"]) {
                        const value = finite(entry[`${key}_ms`]);
                        if (value !== null) point[key] = point[key] === null ? value : Math.max(point[key], value);
                    }
                    const sizes = entry.batch_sizes && typeof entry.batch_sizes === "object" ? entry.batch_sizes : {};
                    for (const [size, n] of Object.entries(sizes)) {
                        const s = Number(size);
                        if (Number.isFinite(s)) point.batch.set(s, (point.batch.get(s) || 0) + count(n));
                    }
                    if (entry.version !== undefined) point.versions.push(entry.version);
                }
                return point;
            }

            function ingestStats(data) {
                const entries = Array.isArray(data && data.models) ? data.models : [];
                const time = finite(data && data.time) ?? Date.now() / 1000;
                statsUpdates += 1;
                for (const card of cards.values()) {
                    const metrics = card.metrics;
                    const point = aggregate(entries.filter((entry) => entry && entry.name === card.name), time);
                    metrics.history.push(point);
                    if (metrics.history.length > HISTORY) metrics.history.splice(0, metrics.history.length - HISTORY);
                    metrics.latest = point;
                    metrics.window = finite(data && data.window_seconds);
                    drawMetrics(card);
                    metrics.root.dataset.updated = String(statsUpdates);
                    metrics.root.dataset.time = String(time);
                }
            }

            function fmt(value) {
                if (value === null || value === undefined || !Number.isFinite(value)) return DASH;
                const size = Math.abs(value);
                if (size >= 1000) return Math.round(value).toLocaleString("en-US");
                if (size >= 100) return value.toFixed(0);
                if (size >= 10) return value.toFixed(1).replace(/\.0$/, "");
                if (size === 0) return "0";
                return value.toFixed(2).replace(/\.?0+$/, "") || "0";
            }

            function niceCeil(value) {
                if (!(value > 0)) return 1;
                const power = 10 ** Math.floor(Math.log10(value));
                for (const step of [1, 2, 2.5, 5, 10]) {
                    if (step * power >= value * (1 - 1e-9)) return step * power;
                }
                return 10 * power;
            }

            function colors() {
                if (palette) return palette;
                const style = getComputedStyle(document.documentElement);
                const read = (name, fallback) => style.getPropertyValue(name).trim() || fallback;
                palette = {
                    rps: read("--c-rps", "#2557d6"), p50: read("--c-p50", "#0f8a5f"), p99: read("--c-p99", "#d97706"),
                    queued: read("--c-queued", "#7c3aed"), batch: read("--c-batch", "#2557d6"),
                    grid: read("--c-grid", "#e6e9ee"), text: read("--c-text", "#5f6872"),
                    font: getComputedStyle(document.body).fontFamily || "sans-serif",
                };
                return palette;
            }

            /** Sizes the canvas to its CSS box at the device pixel ratio; returns a cleared context in CSS pixels. */
            function prepare(canvas) {
                const ratio = window.devicePixelRatio || 1;
                const width = Math.max(10, Math.round(canvas.clientWidth || 200));
                const height = Math.max(10, Math.round(canvas.clientHeight || 56));
                if (canvas.width !== Math.round(width * ratio)) canvas.width = Math.round(width * ratio);
                if (canvas.height !== Math.round(height * ratio)) canvas.height = Math.round(height * ratio);
                const ctx = canvas.getContext("2d");
                ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
                ctx.clearRect(0, 0, width, height);
                return { ctx, width, height };
            }

            function gridLines(ctx, width, height) {
                ctx.strokeStyle = colors().grid;
                ctx.lineWidth = 1;
                ctx.beginPath();
                for (const y of [Math.round(height / 2) + 0.5]) {
                    ctx.moveTo(0, y);
                    ctx.lineTo(width, y);
                }
                ctx.stroke();
            }

            function lineChart(chart, history, keys) {
                const { ctx, width, height } = prepare(chart.canvas);
                let top = 0;
                for (const point of history) {
                    for (const key of keys) if (point[key] !== null) top = Math.max(top, point[key]);
                }
                const max = niceCeil(top);
                chart.max.textContent = fmt(max);
                chart.min.textContent = "0";
                gridLines(ctx, width, height);
                const pad = 3;
                const step = (width - 2 * pad) / (HISTORY - 1);
                const x = (i) => width - pad - (history.length - 1 - i) * step;
                const y = (v) => height - pad - (v / max) * (height - 2 * pad);
                for (const key of keys) {
                    const segments = [];
                    let current = null;
                    history.forEach((point, i) => {
                        if (point[key] === null) {
                            current = null;
                            return;
                        }
                        if (!current) segments.push((current = []));
                        current.push([x(i), y(point[key])]);
                    });
                    const color = colors()[key];
                    ctx.strokeStyle = color;
                    ctx.fillStyle = color;
                    ctx.lineWidth = 1.5;
                    ctx.lineJoin = "round";
                    for (const segment of segments) {
                        if (keys.length === 1 && segment.length > 1) {
                            ctx.globalAlpha = 0.12;
                            ctx.beginPath();
                            ctx.moveTo(segment[0][0], height - pad);
                            for (const [px, py] of segment) ctx.lineTo(px, py);
                            ctx.lineTo(segment[segment.length - 1][0], height - pad);
                            ctx.closePath();
                            ctx.fill();
                            ctx.globalAlpha = 1;
                        }
                        ctx.beginPath();
                        segment.forEach(([px, py], i) => (i ? ctx.lineTo(px, py) : ctx.moveTo(px, py)));
                        ctx.stroke();
                        const [lx, ly] = segment[segment.length - 1];
                        ctx.beginPath();
                        ctx.arc(lx, ly, segment.length === 1 ? 2 : 1.8, 0, 2 * Math.PI);
                        ctx.fill();
                    }
                }
            }

            function barChart(chart, batch) {
                const { ctx, width, height } = prepare(chart.canvas);
                const bars = [...batch.entries()].sort((a, b) => a[0] - b[0]);
                const max = niceCeil(Math.max(0, ...bars.map(([, n]) => n)));
                chart.max.textContent = fmt(max);
                chart.min.textContent = "0";
                const pal = colors();
                ctx.font = `10px ${pal.font}`;
                ctx.textAlign = "center";
                if (!bars.length) {
                    ctx.fillStyle = pal.text;
                    ctx.textBaseline = "middle";
                    ctx.fillText("no batches yet", width / 2, height / 2);
                    return;
                }
                const labelHeight = 12;
                const plot = height - labelHeight - 3;
                const slot = width / bars.length;
                const barWidth = Math.max(2, Math.min(26, slot * 0.7));
                const widest = Math.max(...bars.map(([size]) => ctx.measureText(String(size)).width)) + 4;
                const every = Math.max(1, Math.ceil(widest / slot));
                ctx.textBaseline = "alphabetic";
                bars.forEach(([size, n], i) => {
                    const cx = slot * (i + 0.5);
                    const h = n > 0 ? Math.max(1, (n / max) * (plot - 2)) : 0;
                    ctx.fillStyle = pal.batch;
                    ctx.fillRect(cx - barWidth / 2, plot - h + 2, barWidth, h);
                    if (i % every === 0 || i === bars.length - 1) {
                        ctx.fillStyle = pal.text;
                        ctx.fillText(String(size), cx, height - 3);
                    }
                });
            }

            function drawMetrics(card) {
                const metrics = card.metrics;
                const point = metrics.latest;
                if (!point) return;
                const { rps, latency, queued, batch } = metrics.charts;
                lineChart(rps, metrics.history, ["rps"]);
                rps.value.textContent = `${fmt(point.rps)} (${fmt(point.sps)} samples/s)`;
                lineChart(latency, metrics.history, ["p50", "p99"]);
                latency.value.textContent = point.p50 === null && point.p99 === null
                    ? "no requests"
                    : `p50 ${fmt(point.p50)} \u00b7 p99 ${fmt(point.p99)}`;
                lineChart(queued, metrics.history, ["queued"]);
                queued.value.textContent = fmt(point.queued);
                barChart(batch, point.batch);
                let batches = 0;
                let samples = 0;
                for (const [size, n] of point.batch) {
                    batches += n;
                    samples += size * n;
                }
                batch.value.textContent = batches
                    ? `${fmt(batches)} batch${batches === 1 ? "" : "es"}, mean ${fmt(samples / batches)}`
                    : DASH;
                for (const chart of Object.values(metrics.charts)) {
                    chart.canvas.setAttribute("aria-label", `${chart.spec.title}: ${chart.value.textContent}`);
                }
                const parts = [];
                if (metrics.window !== null) parts.push(`window ${fmt(metrics.window)} s`);
                if (point.versions.length) parts.push(`version${point.versions.length === 1 ? "" : "s"} ${point.versions
                    .map((v) => `v${v}`).join(", ")}`);
                parts.push(`${fmt(point.success)} ok`, `${fmt(point.fail)} failed`);
                parts.push(`updated ${new Date(point.time * 1000).toLocaleTimeString()}`);
                metrics.status.textContent = parts.join(" \u00b7 ");
            }

            function redrawAll() {
                for (const card of cards.values()) drawMetrics(card);
            }

            // ---- start -------------------------------------------------------------------------------------------

            function scheduleModels() {
                clearTimeout(modelsTimer);
                const waiting = cards.size === 0 || [...cards.values()].some((card) => card.version === null);
                modelsTimer = setTimeout(async () => {
                    if (!document.hidden) await loadModels();
                    scheduleModels();
                }, waiting ? MODELS_WAITING_MS : MODELS_EVERY_MS);
            }

            async function reloadAll() {
                globalErrors.clear();
                setGlobalError("", "");
                await loadModels();
                for (const card of cards.values()) {
                    if (!card.root.classList.contains("loading")) loadGrid(card);
                }
                scheduleModels();
            }

            async function start() {
                window.addEventListener("error", (event) => setGlobalError("script", `Page error: ${event.message}`));
                window.addEventListener("unhandledrejection", (event) => {
                    setGlobalError("script", `Page error: ${event.reason && event.reason.message || event.reason}`);
                });
                takeTokenFromAddress();
                wireTokenBox();
                window.addEventListener("resize", () => {
                    clearTimeout(resizeTimer);
                    resizeTimer = setTimeout(redrawAll, 150);
                });
                await loadModels();
                scheduleModels();
                pollStats();
            }

            if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
            else start();
        })();
        """#
}
