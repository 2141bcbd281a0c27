/*! supportbot website widget. Embed it with one line:
 *    <script src="https://BOT-HOST/widget.js" data-title="Acme support" async></script>
 *  Plain JavaScript, no dependencies, no build step. The UI lives in a shadow root (the host page's
 *  styles do not reach it), text is only ever inserted as text, and the only global is window.SupportBot.
 *  Options (data-* attributes or SupportBot.init({...})): server, title, greeting, placeholder,
 *  position ("right" | "left"), color, textColor, open, lang, strings, customerId, customerHash. */
(() => {
  "use strict";
  if (window.SupportBot && window.SupportBot.version) return; // the snippet was pasted twice

  // Only valid while this (async) script first runs: remember where we came from and how we were configured.
  const script = document.currentScript;

  const STRINGS = {
    open: "Open chat",
    close: "Close chat",
    conversation: "Conversation",
    message: "Message",
    send: "Send",
    you: "You",
    typing: "Typing…",
    sources: "Sources",
    suggestions: "Suggested replies",
    rate: "Was this answer helpful?",
    helpful: "Helpful",
    notHelpful: "Not helpful",
    commentPrompt: "What went wrong? (optional)",
    commentSend: "Send feedback",
    commentSkip: "Skip",
    thanks: "Thanks for your feedback!",
    feedbackError: "Your feedback could not be sent. Please try again.",
    handoff: "Talk to a person",
    handoffMessage: "I'd like to talk to a person.",
    handedOff: "This conversation has been handed over to our support team.",
    newChat: "Start a new conversation",
    error: "Sorry, something went wrong and your message was not answered.",
    busyError: "We are receiving many messages right now. Please try again in a moment.",
    offlineError: "You appear to be offline. Check your connection and try again.",
    offline: "You are offline.",
    unavailable: "Chat is not available on this site.",
    retry: "Retry",
  };
  const DEFAULTS = {
    server: "",
    title: "Support",
    greeting: "Hi! How can we help you today?",
    placeholder: "Type your message…",
    position: "right",
    color: "#2457c5",
    textColor: "",
    open: false,
    lang: "",
    customerId: "", // a verified customer: the host site's id for the logged-in customer ...
    customerHash: "", // ... and its HMAC-SHA256 with the bot's server.identity_secret, made by the site's server
  };
  const EXPIRED = [401, 403, 404]; // a stored conversation the server no longer accepts: start a new one

  // Material Design icons (Apache License 2.0), 24x24.
  const ICONS = {
    chat: "M20 2H4c-1.1 0-2 .9-2 2v18l4-4h14c1.1 0 2-.9 2-2V4c0-1.1-.9-2-2-2zM6 9h12v2H6V9zm8 5H6v-2h8v2zm4-6H6V6h12v2z",
    close: "M19 6.41 17.59 5 12 10.59 6.41 5 5 6.41 10.59 12 5 17.59 6.41 19 12 13.41 17.59 19 19 17.59 13.41 12z",
    send: "M2.01 21 23 12 2.01 3 2 10l15 2-15 2z",
    person: "M12 12c2.21 0 4-1.79 4-4s-1.79-4-4-4-4 1.79-4 4 1.79 4 4 4zm0 2c-2.67 0-8 1.34-8 4v2h16v-2c0-2.66-5.33-4-8-4z",
    up: "M1 21h4V9H1v12zm22-11c0-1.1-.9-2-2-2h-6.31l.95-4.57.03-.32c0-.41-.17-.79-.44-1.06L14.17 1 7.59 7.59C7.22 7.95 7 8.45 7 9v10c0 1.1.9 2 2 2h9c.83 0 1.54-.5 1.84-1.22l3.02-7.05c.09-.23.14-.47.14-.73v-2z",
    down: "M15 3H6c-.83 0-1.54.5-1.84 1.22l-3.02 7.05c-.09.23-.14.47-.14.73v2c0 1.1.9 2 2 2h6.31l-.95 4.57-.03.32c0 .41.17.79.44 1.06L9.83 23l6.59-6.59c.36-.36.58-.86.58-1.41V5c0-1.1-.9-2-2-2zm4 0v12h4V3h-4z",
  };

  const STYLE = `
:host{all:initial}
.root{--sb-accent:#2457c5;--sb-on-accent:#fff;--sb-ink:#2457c5;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:#1f2328;text-align:left;-webkit-text-size-adjust:100%}
.root *,.root *::before,.root *::after{box-sizing:border-box}
[hidden]{display:none!important}
button,textarea{font:inherit;color:inherit;margin:0}
button{cursor:pointer}
svg{width:24px;height:24px;fill:currentColor;flex:none}
:focus-visible{outline:3px solid var(--sb-ink);outline-offset:2px}
header :focus-visible,.user :focus-visible{outline-color:var(--sb-on-accent)}
.launcher{position:fixed;bottom:20px;right:20px;z-index:2147483000;width:58px;height:58px;border:0;border-radius:50%;background:var(--sb-accent);color:var(--sb-on-accent);box-shadow:0 4px 16px rgba(0,0,0,.28);display:grid;place-items:center}
.launcher svg{width:28px;height:28px}
.panel{position:fixed;bottom:20px;right:20px;z-index:2147483000;width:380px;max-width:calc(100vw - 40px);height:600px;max-height:calc(100vh - 40px);display:flex;flex-direction:column;background:#fff;border-radius:14px;box-shadow:0 12px 48px rgba(0,0,0,.3);overflow:hidden}
.left .launcher,.left .panel{right:auto;left:20px}
header{display:flex;align-items:center;gap:8px;padding:10px 8px 10px 18px;background:var(--sb-accent);color:var(--sb-on-accent)}
h2{flex:1;margin:0;font-size:17px;font-weight:600;line-height:1.3}
.icon{display:grid;place-items:center;padding:6px;border:0;border-radius:8px;background:none;color:inherit}
.log{flex:1;overflow-y:auto;margin:0;padding:16px;list-style:none;display:flex;flex-direction:column;gap:12px}
.msg{display:flex;flex-direction:column;align-items:flex-start;max-width:86%}
.msg.user{align-self:flex-end;align-items:flex-end}
.bubble{padding:9px 13px;border-radius:16px;border-bottom-left-radius:4px;background:#eef1f4;white-space:pre-wrap;overflow-wrap:anywhere}
.user .bubble{background:var(--sb-accent);color:var(--sb-on-accent);border-radius:16px;border-bottom-right-radius:4px}
.user a{color:inherit}
.error .bubble{background:#fff1f0;color:#a40e26;border:1px solid #f2b8b5}
a{color:var(--sb-ink)}
.sources{margin-top:6px;font-size:13px;color:#57606a}
.sources ul{margin:2px 0 0;padding:0 0 0 18px}
.qr{display:flex;flex-wrap:wrap;gap:6px;margin-top:8px}
.qr button,.pill{padding:6px 13px;border:1.5px solid var(--sb-accent);border-radius:18px;background:#fff;color:var(--sb-ink);font-weight:500}
.qr button:hover,.pill:hover{background:#eef1f4}
.fb{display:flex;gap:2px;margin-top:2px;color:#57606a}
.fb .icon{padding:5px}
.fb svg{width:16px;height:16px}
.fb [aria-pressed=true]{color:var(--sb-ink)}
.fb [aria-disabled=true]:not([aria-pressed=true]){opacity:.45;cursor:default}
.comment{display:flex;flex-direction:column;gap:6px;width:100%;margin-top:6px}
.comment textarea{width:260px;max-width:100%}
.row{display:flex;gap:8px;align-items:center}
.error .row{margin-top:6px}
.primary,.send{border:0;border-radius:10px;background:var(--sb-accent);color:var(--sb-on-accent)}
.primary{padding:6px 12px}
.note{margin:4px 0 0;font-size:13px;color:#57606a}
.note.bad{color:#a40e26}
textarea{padding:8px 10px;border:1px solid #8c959f;border-radius:10px;background:#fff;resize:none;line-height:1.4}
textarea::placeholder{color:#6e7781;opacity:1}
.composer{display:flex;gap:8px;align-items:flex-end;padding:10px 12px 6px;border-top:1px solid #d0d7de}
.composer textarea{flex:1;min-height:42px;max-height:128px;font-size:15px}
.send{display:grid;place-items:center;width:42px;height:42px}
.send[aria-disabled=true],.send:disabled{opacity:.55;cursor:default}
.foot{display:flex;justify-content:center;padding:0 12px 8px}
.link{display:inline-flex;align-items:center;gap:4px;padding:4px 6px;border:0;border-radius:6px;background:none;color:var(--sb-ink);font-size:13px;text-decoration:underline}
.link svg{width:16px;height:16px}
.banner{padding:9px 16px;font-size:13px;border-bottom:1px solid #eac54f;background:#fff8c5;color:#3b2300}
.banner.handoff{display:flex;flex-wrap:wrap;align-items:center;gap:4px 8px;border-color:#8fd19e;background:#e6f6ea;color:#0a3622}
.banner .link{padding:0;color:inherit}
.dots{display:flex;gap:4px;padding:13px 14px}
.dots i{width:7px;height:7px;border-radius:50%;background:#57606a;animation:sb-blink 1.2s infinite}
.dots i:nth-child(2){animation-delay:.2s}
.dots i:nth-child(3){animation-delay:.4s}
@keyframes sb-blink{0%,80%,100%{opacity:.25}40%{opacity:1}}
.sr{position:absolute;width:1px;height:1px;margin:-1px;padding:0;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap;border:0}
@media (max-width:480px){.panel,.left .panel{inset:0;width:100%;max-width:none;height:100%;max-height:none;border-radius:0}.composer textarea{font-size:16px}}
@media (prefers-reduced-motion:reduce){.dots i{animation:none;opacity:.6}}
`;

  // ---- DOM helpers: text always goes in as text nodes, never as markup ----

  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v == null || v === false) continue;
      if (k === "class") el.className = v;
      else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? "" : String(v));
    }
    for (const kid of kids) if (kid != null) el.append(kid);
    return el;
  }

  const button = (cls, label, onclick, ...kids) => h("button", { class: cls, type: "button", onclick }, ...kids, label);
  const iconButton = (cls, label, onclick, name, attrs) =>
    h("button", Object.assign({ class: cls, type: "button", "aria-label": label, title: label, onclick }, attrs), icon(name));

  function icon(name) {
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    const path = document.createElementNS(ns, "path");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    path.setAttribute("d", ICONS[name]);
    svg.append(path);
    return svg;
  }

  function attempt(fn, fallback) {
    try {
      return fn();
    } catch (_) {
      return fallback; // e.g. storage blocked by the browser's settings
    }
  }

  /** An absolute http(s) URL, or null for anything else (javascript:, data:, garbage). */
  function safeHref(url, base) {
    const u = attempt(() => new URL(String(url), base), null);
    return u && (u.protocol === "http:" || u.protocol === "https:") ? u.href : null;
  }

  const link = (href, label) => h("a", { href, target: "_blank", rel: "noopener noreferrer" }, label);

  /** A message bubble; in bot messages bare http(s) URLs become links, the rest stays plain text. */
  function bubble(text, linkify) {
    const el = h("div", { class: "bubble" });
    text = text == null ? "" : String(text);
    let at = 0;
    for (const m of linkify ? text.matchAll(/\bhttps?:\/\/[^\s<>"']+/g) : []) {
      const url = m[0].replace(/[.,;:!?)\]}]+$/, "");
      const href = safeHref(url);
      if (!href) continue;
      el.append(text.slice(at, m.index), link(href, url));
      at = m.index + url.length;
    }
    el.append(text.slice(at));
    return el;
  }

  // ---- colours: the accent is the site's choice; text on it is picked (or kept) for contrast ----

  function rgb(color) {
    const ctx = document.createElement("canvas").getContext("2d");
    if (!ctx) return [36, 87, 197];
    ctx.fillStyle = color;
    const v = ctx.fillStyle; // normalised to #rrggbb or rgba(...)
    if (v[0] === "#") return [1, 3, 5].map((i) => parseInt(v.slice(i, i + 2), 16));
    return (v.match(/[\d.]+/g) || [0, 0, 0]).slice(0, 3).map(Number);
  }

  function contrast(a, b) {
    const lum = (c) => c.map((x) => ((x /= 255) <= 0.03928 ? x / 12.92 : ((x + 0.055) / 1.055) ** 2.4)).reduce((s, x, i) => s + x * [0.2126, 0.7152, 0.0722][i], 0);
    const [hi, lo] = [lum(a), lum(b)].sort((x, y) => y - x);
    return (hi + 0.05) / (lo + 0.05);
  }

  function paint(el, accent, text) {
    const valid = (c) => typeof c === "string" && c !== "" && window.CSS.supports("color", c);
    if (!valid(accent)) accent = DEFAULTS.color;
    const a = rgb(accent);
    const white = [255, 255, 255];
    if (!valid(text)) text = contrast(a, white) >= contrast(a, [17, 17, 17]) ? "#fff" : "#111";
    el.style.setProperty("--sb-accent", accent);
    el.style.setProperty("--sb-on-accent", text);
    // The accent as text on white (links, quick replies) only where it is readable (WCAG AA, 4.5:1).
    el.style.setProperty("--sb-ink", contrast(a, white) >= 4.5 ? accent : "#1f2328");
  }

  let sheet = null;
  function style(root) {
    try {
      sheet = sheet || new CSSStyleSheet();
      if (!sheet.cssRules.length) sheet.replaceSync(STYLE);
      root.adoptedStyleSheets = [sheet]; // not an inline <style>: works under a strict style-src CSP
    } catch (_) {
      root.append(h("style", {}, STYLE));
    }
  }

  const storage = (kind) => attempt(() => window[kind], null);

  // ---- options: defaults < data-* attributes < init({...}) ----

  function fromScript(el) {
    const d = el ? el.dataset : {};
    const o = {};
    for (const k of Object.keys(DEFAULTS)) if (d[k] != null) o[k] = k === "open" ? d[k] !== "false" : d[k];
    if (d.strings) o.strings = attempt(() => JSON.parse(d.strings), {});
    return o;
  }

  function options(...layers) {
    const o = Object.assign({}, DEFAULTS);
    const strings = Object.assign({}, STRINGS);
    for (const layer of layers) {
      for (const [k, v] of Object.entries(layer || {})) {
        if (k === "strings" && v && typeof v === "object") {
          for (const [sk, sv] of Object.entries(v)) if (sk in STRINGS && typeof sv === "string") strings[sk] = sv;
        } else if (k in DEFAULTS && v != null) o[k] = k === "open" ? Boolean(v) : String(v);
      }
    }
    o.strings = strings;
    if (o.position !== "left") o.position = "right";
    const server = o.server ? o.server.replace(/\/?$/, "/") : script && script.src;
    // The folder widget.js was served from is the bot's base URL.
    o.server = attempt(() => new URL(".", server).href, "");
    if (!o.server) throw new Error("supportbot: cannot tell the bot's address; use SupportBot.init({server: 'https://BOT-HOST/'})");
    return o;
  }

  // ---- the widget ----

  class Widget {
    constructor(o) {
      this.o = o;
      this.s = o.strings;
      this.base = o.server;
      this.key = "supportbot:" + this.base;
      this.conv = this.read();
      this.busy = this.started = false;
      this.typingEl = null;
      this.onNetwork = () => this.setOffline(navigator.onLine === false);
      this.build();
    }

    build() {
      const { s, o } = this;
      this.host = document.createElement("supportbot-widget");
      const root = this.host.attachShadow({ mode: "open" });
      style(root);
      const close = () => this.setOpen(false);
      this.launcher = iconButton("launcher", s.open, () => this.setOpen(true), "chat", { "aria-expanded": "false", "aria-controls": "panel" });
      this.offlineEl = h("div", { class: "banner", role: "status" });
      this.handoffEl = h("div", { class: "banner handoff", hidden: true }, h("span", {}, s.handedOff), button("link", s.newChat, () => this.reset()));
      this.log = h("ol", { class: "log", role: "log", "aria-live": "polite", "aria-label": s.conversation, tabindex: "0" });
      this.status = h("div", { class: "sr", role: "status" });
      this.input = h("textarea", { rows: "1", maxlength: "2000", placeholder: o.placeholder, "aria-label": s.message, oninput: () => this.grow() });
      this.input.addEventListener("keydown", (e) => {
        if (e.key === "Enter" && !e.shiftKey && !e.isComposing) e.preventDefault(), this.submit();
      });
      this.sendBtn = h("button", { class: "send", type: "submit", "aria-label": s.send, title: s.send }, icon("send"));
      this.handoffBtn = button("link", s.handoff, () => this.handoff(), icon("person"));
      this.panel = h(
        "section",
        { class: "panel", id: "panel", role: "dialog", "aria-labelledby": "title", hidden: true },
        h("header", {}, h("h2", { id: "title" }, o.title), iconButton("icon", s.close, close, "close")),
        this.offlineEl,
        this.handoffEl,
        this.log,
        this.status,
        h("form", { class: "composer", onsubmit: (e) => (e.preventDefault(), this.submit()) }, this.input, this.sendBtn),
        h("div", { class: "foot" }, this.handoffBtn),
      );
      this.panel.addEventListener("keydown", (e) => e.key === "Escape" && (e.stopPropagation(), close()));
      this.root = h("div", { class: "root " + o.position, lang: o.lang || null }, this.launcher, this.panel);
      paint(this.root, o.color, o.textColor);
      root.append(this.root);
      document.body.append(this.host);
      window.addEventListener("online", this.onNetwork);
      window.addEventListener("offline", this.onNetwork);
      this.onNetwork();
      if (o.open || attempt(() => storage("sessionStorage").getItem(this.key + ":open"))) this.setOpen(true, false);
    }

    destroy() {
      window.removeEventListener("online", this.onNetwork);
      window.removeEventListener("offline", this.onNetwork);
      this.host.remove();
    }

    // -- conversation id + token, kept in the site's localStorage so the chat survives navigation --

    read() {
      const v = attempt(() => JSON.parse(storage("localStorage").getItem(this.key)), null);
      // A conversation belongs to the customer who started it: another one logged in starts their own.
      const mine = v && (v.customer || "") === this.o.customerHash;
      return mine && typeof v.id === "string" && typeof v.token === "string" ? v : null;
    }

    save(conv) {
      this.conv = conv; // when storage is blocked: kept for this page only
      attempt(() => (conv ? storage("localStorage").setItem(this.key, JSON.stringify(conv)) : storage("localStorage").removeItem(this.key)));
    }

    // -- opening, closing, state --

    setOpen(open, focus = true) {
      this.panel.hidden = !open;
      this.launcher.hidden = open;
      this.launcher.setAttribute("aria-expanded", String(open));
      const ss = storage("sessionStorage"); // an open chat stays open on the site's next page
      attempt(() => (open ? ss.setItem(this.key + ":open", "1") : ss.removeItem(this.key + ":open")));
      if (open && !this.started) this.start();
      if (focus) (open ? this.input : this.launcher).focus();
    }

    setOffline(offline) {
      this.offlineEl.hidden = !offline;
      this.offlineEl.textContent = offline ? this.s.offline : "";
      this.scroll(); // a banner shown above the log shrinks it: keep the last message in view
    }

    setHandoff(on) {
      this.handoffEl.hidden = !on;
      this.handoffBtn.hidden = on;
      this.scroll();
    }

    // The server does not serve this site (its origin is not in server.allowed_origins): say so, and offer nothing
    // to send or try again.
    setUnavailable() {
      this.add("error", this.s.unavailable).classList.add("unavailable");
      this.input.disabled = true;
      this.sendBtn.disabled = true;
      this.handoffBtn.hidden = true;
    }

    setBusy(busy) {
      this.busy = busy;
      this.sendBtn.setAttribute("aria-disabled", String(busy));
      if (this.typingEl) this.typingEl.remove();
      this.typingEl = busy ? h("li", { class: "msg bot typing", "aria-hidden": "true" }, h("div", { class: "bubble dots" }, h("i"), h("i"), h("i"))) : null;
      if (busy) this.log.append(this.typingEl), this.scroll();
      this.announce(busy ? this.s.typing : "");
    }

    announce(text) {
      this.status.textContent = text;
    }

    scroll() {
      this.log.scrollTop = this.log.scrollHeight;
    }

    grow() {
      this.input.style.height = "auto";
      this.input.style.height = Math.min(this.input.scrollHeight + 2, 128) + "px";
    }

    // -- messages --

    add(kind, text) {
      const who = kind === "user" ? this.s.you : this.o.title;
      const li = h("li", { class: "msg " + kind }, h("span", { class: "sr" }, who + ": "), bubble(text, kind !== "user"));
      this.log.append(li);
      this.scroll();
      return li;
    }

    addBot(turn, last) {
      const s = this.s;
      const li = this.add("bot", turn.answer);
      const id = Number.isInteger(turn.turn_id) ? turn.turn_id : null;
      if (typeof turn.route === "string") li.dataset.route = turn.route; // for tests and debugging
      if (id != null) li.dataset.turn = id;
      const sources = (Array.isArray(turn.sources) ? turn.sources : []).map((x) => [safeHref(x && x.url, this.base), x && (x.title || x.url)]).filter(([href]) => href);
      if (sources.length) li.append(h("div", { class: "sources" }, s.sources + ":", h("ul", {}, ...sources.map(([href, title]) => h("li", {}, link(href, String(title)))))));
      const replies = Array.isArray(turn.quick_replies) ? turn.quick_replies.filter((q) => q && q.label) : [];
      if (last && replies.length) {
        li.append(h("div", { class: "qr", role: "group", "aria-label": s.suggestions }, ...replies.map((q) => button("", String(q.label), () => this.choose(q)))));
      }
      if (id != null && turn.rateable) li.append(this.feedback(id)); // thumbs under answers only, not questions back
      this.scroll();
      return li;
    }

    greet() {
      if (this.o.greeting) this.add("bot", this.o.greeting);
    }

    fail(e, retry) {
      const s = this.s;
      if (e.code === "origin_not_allowed") return this.setUnavailable(); // the site's setup, not worth a retry
      const text = e.offline ? s.offlineError : e.status === 429 ? s.busyError : e.reason ? `${s.error} (${e.reason})` : s.error;
      const li = this.add("error", text);
      li.append(h("div", { class: "row" }, button("pill", s.retry, () => (li.remove(), this.input.focus(), retry()))));
    }

    // -- talking to the server --

    async api(path, init) {
      const headers = Object.assign(init.body ? { "Content-Type": "application/json" } : {}, init.headers);
      let res;
      let data = null;
      try {
        res = await fetch(this.base + path, Object.assign({}, init, { headers, mode: "cors", credentials: "omit", cache: "no-store" }));
      } catch (_) {
        // Network down, server unreachable, or the server refused this site's origin (CORS): all look alike here.
        throw { offline: navigator.onLine === false };
      }
      data = await res.json().catch(() => null);
      if (!res.ok || !data || typeof data !== "object") {
        const text = (key) => (data && typeof data[key] === "string" ? data[key] : "");
        throw { status: res.status, reason: text("error"), code: text("code") };
      }
      return data;
    }

    post(path, body) {
      return this.api(path, { method: "POST", body: JSON.stringify(body) });
    }

    withConv(body) {
      if (this.conv) return Object.assign(body, { conversation_id: this.conv.id, token: this.conv.token });
      const o = this.o; // a new conversation: of the verified customer, when the site says who it is
      return o.customerId ? Object.assign(body, { customer_id: o.customerId, customer_hash: o.customerHash }) : body;
    }

    async start() {
      this.started = true;
      this.greet();
      if (!this.conv) return;
      this.setBusy(true);
      try {
        const data = await this.api("api/conversations/" + encodeURIComponent(this.conv.id), { headers: { "X-Conversation-Token": this.conv.token } });
        this.setBusy(false);
        const turns = Array.isArray(data.turns) ? data.turns : [];
        this.log.setAttribute("aria-live", "off"); // restoring the history is not news: do not read it all out
        let offered = [];
        turns.forEach((t, i) => {
          // A chosen quick reply was sent as its value (e.g. "/track_order"): show its label again.
          const chosen = offered.find((q) => q && q.value === t.message);
          if (t.message) this.add("user", chosen ? chosen.label : t.message);
          this.addBot(t, i === turns.length - 1 && !data.handoff);
          offered = Array.isArray(t.quick_replies) ? t.quick_replies : [];
        });
        this.log.setAttribute("aria-live", "polite");
        this.setHandoff(Boolean(data.handoff));
      } catch (e) {
        this.setBusy(false);
        if (EXPIRED.includes(e.status)) this.save(null);
        else this.fail(e, () => (this.log.replaceChildren(), this.start()));
      }
    }

    submit() {
      const text = this.input.value.trim();
      if (!text || this.busy) return;
      this.input.value = "";
      this.grow();
      this.send({ message: text }, text);
    }

    choose(reply) {
      if (this.busy) return;
      this.send({ message: String(reply.value != null ? reply.value : reply.label) }, String(reply.label));
      this.input.focus();
    }

    handoff() {
      if (this.busy) return;
      this.send({ message: this.s.handoffMessage, action: "handoff" }, this.s.handoffMessage);
      this.input.focus();
    }

    send(payload, shown) {
      // Quick replies and error notes belong to the last answer only.
      for (const el of this.log.querySelectorAll(".qr, .msg.error")) el.remove();
      this.add("user", shown);
      this.ask(payload);
    }

    async ask(payload) {
      this.setBusy(true);
      try {
        let reply;
        try {
          reply = await this.post("api/chat", this.withConv(Object.assign({}, payload)));
        } catch (e) {
          if (!this.conv || !EXPIRED.includes(e.status)) throw e;
          this.save(null); // the stored conversation has expired: start a new one
          reply = await this.post("api/chat", this.withConv(Object.assign({}, payload)));
        }
        this.save({ id: String(reply.conversation_id), token: String(reply.token), customer: this.o.customerHash });
        this.setBusy(false);
        this.addBot(reply, true);
        if (reply.handoff) this.setHandoff(true);
      } catch (e) {
        this.setBusy(false);
        this.fail(e, () => this.ask(payload));
      }
    }

    reset() {
      this.save(null);
      this.log.replaceChildren();
      this.setHandoff(false);
      this.greet();
      this.input.focus();
    }

    // -- feedback: thumbs under each answer; thumbs-down asks for an optional comment --

    feedback(turnId) {
      const s = this.s;
      const up = iconButton("icon", s.helpful, null, "up", { "aria-pressed": "false" });
      const down = iconButton("icon", s.notHelpful, null, "down", { "aria-pressed": "false", "aria-expanded": "false" });
      const set = (name, value) => [up, down].forEach((b) => (value == null ? b.removeAttribute(name) : b.setAttribute(name, value)));
      const lock = (chosen) => (set("aria-disabled", "true"), chosen.setAttribute("aria-pressed", "true"));
      const locked = () => up.getAttribute("aria-disabled") === "true";
      up.addEventListener("click", async () => {
        if (locked()) return;
        lock(up);
        try {
          await this.rate(turnId, "up");
          this.announce(s.thanks);
        } catch (_) {
          set("aria-disabled", null), set("aria-pressed", "false");
          this.announce(s.feedbackError);
        }
      });
      down.addEventListener("click", () => locked() || this.comment(down, turnId, () => lock(down)));
      return h("div", { class: "fb", role: "group", "aria-label": s.rate }, up, down);
    }

    comment(down, turnId, lock) {
      const s = this.s;
      const box = down.parentNode;
      const open = box.nextElementSibling;
      if (open && open.classList.contains("comment")) return open.querySelector("textarea").focus();
      const text = h("textarea", { rows: "2", maxlength: "1000", "aria-label": s.commentPrompt, placeholder: s.commentPrompt });
      const note = h("p", { class: "note bad", role: "alert" });
      const expand = (on) => down.setAttribute("aria-expanded", String(on));
      const sendIt = async (comment) => {
        try {
          await this.rate(turnId, "down", comment);
        } catch (_) {
          return (note.textContent = s.feedbackError);
        }
        lock();
        expand(false);
        form.replaceWith(h("p", { class: "note" }, s.thanks));
        this.announce(s.thanks);
        this.input.focus();
      };
      const row = h("div", { class: "row" }, h("button", { class: "primary", type: "submit" }, s.commentSend), button("link", s.commentSkip, () => sendIt("")));
      const form = h("form", { class: "comment", onsubmit: (e) => (e.preventDefault(), sendIt(text.value.trim())) }, text, row, note);
      form.addEventListener("keydown", (e) => {
        if (e.key !== "Escape") return;
        e.stopPropagation(); // closes the comment form, not the whole chat
        form.remove();
        expand(false);
        down.focus();
      });
      expand(true);
      box.after(form);
      text.focus();
      this.scroll();
    }

    rate(turnId, rating, comment) {
      if (!this.conv) return Promise.reject(new Error("no conversation"));
      return this.post("api/feedback", this.withConv(Object.assign({ turn_id: turnId, rating }, comment ? { comment } : {})));
    }
  }

  // ---- the one global ----

  const fromTag = fromScript(script);
  let widget = null;
  const api = Object.freeze({
    version: "1",
    /** (Re)create the widget; options override the script tag's data-* attributes. */
    init(opts) {
      api.destroy();
      const o = options(fromTag, opts);
      const mount = () => (widget = new Widget(o));
      if (document.body) mount();
      else document.addEventListener("DOMContentLoaded", mount, { once: true });
      return api;
    },
    open: () => widget && widget.setOpen(true),
    close: () => widget && widget.setOpen(false),
    destroy() {
      if (widget) widget.destroy();
      widget = null;
    },
  });
  window.SupportBot = api;
  // data-manual: the page calls SupportBot.init({...}) itself (e.g. from the script tag's onload).
  if (!script || script.dataset.manual == null) api.init();
})();
