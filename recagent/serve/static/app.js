// The chat page of `recagent serve`. Every answer of the service is a whole SessionView and
// is rendered whole, so the page never holds state the server does not. The session id lives
// in sessionStorage: a reload keeps the conversation, a new tab starts its own.
// Text from the service (titles, explanations, replies) is only ever set as textContent:
// an item text that carries markup must not become markup.
"use strict";

(() => {
  const STORAGE_KEY = "recagent.session";
  const KEY_STORAGE = "recagent.key";
  const FIELD_WORDS = {
    liked: "liked:", disliked: "disliked:", seen: "seen:", include_genres: "only",
    exclude_genres: "no", year_min: "from", year_max: "up to", wishes: "wish:",
  };
  const ACTIONS = [
    { kind: "like", text: "Like", aria: "Like" },
    { kind: "dislike", text: "Dislike", aria: "Dislike" },
    { kind: "seen", text: "Seen it", aria: "Seen it:" },
  ];
  const $ = (id) => document.getElementById(id);
  let sessionId = sessionStorage.getItem(STORAGE_KEY);
  // A service run with --api-key wants it on every /v1/ request. It comes from the key
  // form (shown on a 401) or from the address's fragment (#key=...), which browsers never
  // send to a server; it is kept in sessionStorage only, and taken off the address bar.
  const fromAddress = new URLSearchParams(location.hash.slice(1)).get("key");
  if (fromAddress) {
    sessionStorage.setItem(KEY_STORAGE, fromAddress);
    history.replaceState(null, "", location.pathname + location.search);
  }
  let apiKey = sessionStorage.getItem(KEY_STORAGE) || "";

  // ---- talking to the service ------------------------------------------------------------

  class ApiError extends Error {
    constructor(message, status) {
      super(message);
      this.status = status;
    }
  }

  async function api(method, path, body) {
    const init = { method, headers: { Accept: "application/json" } };
    if (apiKey) init.headers.Authorization = `Bearer ${apiKey}`;
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (e) {
      throw new ApiError("the service cannot be reached; is `recagent serve` running?", 0);
    }
    let data = null;
    try {
      data = await response.json();
    } catch (e) {
      data = null;
    }
    if (!response.ok) throw new ApiError(problem(data, response), response.status);
    return data;
  }

  // The service's own words for what went wrong (FastAPI: a string, or a list for 422).
  function problem(data, response) {
    const detail = data && data.detail;
    if (typeof detail === "string") return detail;
    if (Array.isArray(detail)) {
      return detail.map((e) => {
        const where = (e.loc || []).filter((p) => p !== "body").join(".");
        return where ? `${where}: ${e.msg}` : String(e.msg);
      }).join("; ");
    }
    if (response.status === 429) {
      const wait = response.headers.get("Retry-After");
      return `the service is busy; try again${wait ? ` in ${wait} s` : " shortly"}`;
    }
    return `the service answered ${response.status} ${response.statusText}`.trim();
  }

  function sessionPath(suffix) {
    return `/v1/sessions/${encodeURIComponent(sessionId)}${suffix}`;
  }

  async function ensureSession() {
    if (!sessionId) {
      const view = await api("POST", "/v1/sessions", {});
      rememberSession(view.session_id);
    }
  }

  function rememberSession(id) {
    sessionId = id;
    if (id) sessionStorage.setItem(STORAGE_KEY, id);
    else sessionStorage.removeItem(STORAGE_KEY);
  }

  // One request at a time: the page is marked busy, the answer rendered, an error shown.
  async function perform(action) {
    if (document.body.dataset.busy === "true") return false;
    setBusy(true);
    $("error").textContent = "";
    try {
      const view = await action();
      if (view) render(view);
      return true;
    } catch (e) {
      $("error").textContent = e instanceof ApiError ? e.message : `unexpected: ${e}`;
      if (e instanceof ApiError && e.status === 401) askForKey();
      return false;
    } finally {
      setBusy(false);
    }
  }

  function setBusy(busy) {
    document.body.dataset.busy = String(busy);
    document.querySelector("main").setAttribute("aria-busy", String(busy));
    $("send").disabled = busy;
    for (const button of document.querySelectorAll("#items button, #chips button")) {
      button.disabled = busy;
    }
  }

  // ---- rendering a SessionView -----------------------------------------------------------

  function el(tag, props = {}, children = []) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props)) {
      if (key === "text") node.textContent = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else if (key === "className") node.className = value;
      else node.setAttribute(key, value);
    }
    for (const child of children) node.append(child);
    return node;
  }

  function render(view) {
    document.body.dataset.sessionId = view.session_id || "";
    renderMessages(view.messages || []);
    $("reply").textContent = view.reply || "";
    $("status").textContent = view.degraded
      ? `degraded: ${view.degraded_reason || "no reason given"}` : "";
    renderChips((view.profile && view.profile.chips) || []);
    renderItems(view.items || []);
    document.body.dataset.version = String(Number(document.body.dataset.version) + 1);
  }

  function renderMessages(messages) {
    const list = $("messages");
    list.replaceChildren(...messages.map((m) => el("li", { className: `msg ${m.role}` }, [
      el("span", { className: "visually-hidden", text: m.role === "user" ? "You: " : "recagent: " }),
      el("span", { className: "text", text: m.text }),
    ])));
    list.scrollTop = list.scrollHeight;
  }

  function renderChips(chips) {
    $("chips").replaceChildren(...chips.map((chip) => {
      // The service's label names the field ("no Horror", "seen: Heat (1995)").
      const said = chip.label || `${FIELD_WORDS[chip.field] || chip.field} ${chip.value}`;
      const remove = el("button", {
        type: "button", className: "remove", "aria-label": `Remove “${said}”`, text: "×",
      });
      remove.addEventListener("click", () => perform(
        () => api("POST", sessionPath("/profile/remove"), { field: chip.field, value: chip.value }),
      ));
      return el("span", {
        className: `chip chip-${chip.field}`, dataset: { field: chip.field, value: chip.value },
      }, [el("span", { className: "chip-text", text: said }), remove]);
    }));
  }

  function renderItems(items) {
    $("items").replaceChildren(...items.map((item) => {
      const buttons = ACTIONS.map((action) => {
        const button = el("button", {
          type: "button", className: `action ${action.kind}`, dataset: { action: action.kind },
          "aria-label": `${action.aria} ${item.title}`, text: action.text,
        });
        button.addEventListener("click", () => perform(
          () => api("POST", sessionPath("/feedback"), { item_id: item.item_id, kind: action.kind }),
        ));
        return button;
      });
      const meta = [item.source ? `source: ${item.source}` : "", `id ${item.item_id}`]
        .filter(Boolean).join(" · ");
      return el("li", { className: "item", dataset: { itemId: item.item_id } }, [
        el("div", { className: "item-head" }, [
          el("h3", { className: "title", text: item.title }),
          el("div", { className: "actions", role: "group", "aria-label": `Feedback on ${item.title}` },
             buttons),
        ]),
        el("p", { className: "explanation", text: item.explanation || "" }),
        el("p", { className: "meta", text: meta }),
      ]);
    }));
  }

  // ---- wiring the page -------------------------------------------------------------------

  async function send(event) {
    event.preventDefault();
    if (document.body.dataset.busy === "true") return; // Enter pressed during a turn
    const box = $("message");
    const text = box.value.trim();
    if (!text) {
      $("error").textContent = "Type a message first: what you liked, or what to change.";
      return;
    }
    $("messages").append(el("li", { className: "msg user pending", text }));
    const done = await perform(async () => {
      await ensureSession();
      return api("POST", sessionPath("/messages"), { text });
    });
    if (done) box.value = "";
    for (const pending of document.querySelectorAll("#messages .pending")) pending.remove();
    box.focus();
  }

  function askForKey() {
    $("key-form").hidden = false;
    $("error").textContent = "This service needs its API key: enter it, then send again.";
    $("api-key").focus();
  }

  function useKey(event) {
    event.preventDefault();
    apiKey = $("api-key").value.trim();
    if (apiKey) sessionStorage.setItem(KEY_STORAGE, apiKey);
    else sessionStorage.removeItem(KEY_STORAGE);
    $("api-key").value = "";
    $("key-form").hidden = true;
    $("error").textContent = "";
    $("message").focus();
    restore();
  }

  function startOver() {
    rememberSession(null);
    render({ session_id: "", messages: [], reply: null, items: [], profile: { chips: [] } });
    $("error").textContent = "";
    $("message").focus();
  }

  async function restore() {
    if (!sessionId) return;
    await perform(async () => {
      try {
        return await api("GET", sessionPath(""));
      } catch (e) { // gone (e.g. a new database): start over rather than fail every request
        if (e.status !== 404 && e.status !== 422) throw e;
        rememberSession(null);
        return null;
      }
    });
  }

  $("composer").addEventListener("submit", send);
  $("message").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $("composer").requestSubmit();
    }
  });
  $("new-session").addEventListener("click", startOver);
  $("key-form").addEventListener("submit", useKey);
  restore();
})();
