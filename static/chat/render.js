/**
 * DOM rendering for the room page.
 *
 * Every piece of text that came from a user or the server goes in through
 * textContent / text nodes, never innerHTML: chat bodies, names, titles and reasons
 * are untrusted.
 */

/** Build an element. `text` and string children become text nodes. */
export function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value == null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child == null || child === false) continue;
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

// Pure helpers.

export function formatTime(iso) {
  const date = iso ? new Date(iso) : null;
  if (!date || Number.isNaN(date.getTime())) return "";
  return date.toLocaleTimeString([], { hour: "numeric", minute: "2-digit" });
}

export function formatDuration(seconds) {
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.round(s / 60)} min`;
  if (s < 86400) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86400)} d`;
}

export function displayName(user) {
  return user?.name || "someone";
}

/** The badges a user carries, in display order. */
export function badgesFor(user) {
  const badges = [];
  if (user?.staff) badges.push({ key: "staff", label: "STAFF" });
  if (user?.role === "host") badges.push({ key: "host", label: "HOST" });
  else if (user?.role === "moderator") badges.push({ key: "mod", label: "MOD" });
  return badges;
}

export function isTeam(user) {
  return user?.role === "host" || user?.role === "moderator" || Boolean(user?.staff);
}

export function describeModeration(event) {
  const target = displayName(event.target);
  const by = event.by ? ` by ${displayName(event.by)}` : "";
  const reason = event.reason ? ` (${event.reason})` : "";
  const span = () => {
    if (event.seconds) return ` for ${formatDuration(event.seconds)}`;
    if (event.until) return ` until ${formatTime(event.until)}`;
    return "";
  };
  switch (event.action) {
    case "mute":
      return `${target} was muted${span()}${by}${reason}`;
    case "unmute":
      return `${target} was unmuted${by}`;
    case "ban":
      return `${target} was banned${event.until || event.seconds ? span() : " permanently"}${by}${reason}`;
    case "unban":
      return `${target} was unbanned${by}`;
    case "kick":
      return `${target} was removed from the room${by}${reason}`;
    case "slow_mode":
      return event.seconds
        ? `Slow mode is on: one message every ${formatDuration(event.seconds)}${by}`
        : `Slow mode is off${by}`;
    default:
      return `Moderation: ${event.action}${by}`;
  }
}

/** What a `room` event changed, compared with the state before it (null: unknown). */
export function describeRoomChange(before, after) {
  if (!before) return [after.is_live ? "The stream is live" : "The stream is offline"];
  const lines = [];
  if (before.is_live !== after.is_live) lines.push(after.is_live ? "The stream is live" : "The stream has ended");
  if (after.title != null && before.title !== after.title) lines.push(`Title changed to “${after.title}”`);
  // Slow mode changes arrive as their own moderation event; saying it twice is noise.
  return lines;
}

// Message lines.

function userLabel(user) {
  const role = user?.role || "member";
  return [
    ...badgesFor(user).map((b) => h("span", { class: `badge badge-${b.key}`, text: b.label })),
    h("span", { class: `author role-${role}`, text: displayName(user) }),
  ];
}

function timeNode(iso) {
  return h("time", { class: "msg-time", datetime: iso || null, title: iso ? new Date(iso).toLocaleString() : null, text: formatTime(iso) });
}

/** A message body with the mentioned names set off; text nodes only. */
export function bodyNodes(body, mentions = []) {
  const names = new Set((mentions || []).map((u) => String(u?.name || "").toLowerCase()).filter(Boolean));
  if (!names.size) return [body];
  const parts = String(body).split(/(@[\w.@+-]+)/u);
  return parts.filter((p) => p !== "").map((part) =>
    part.startsWith("@") && names.has(part.slice(1).toLowerCase())
      ? h("span", { class: "mention-token", text: part })
      : part,
  );
}

function replyQuote(reply) {
  if (!reply) return null;
  return h(
    "div",
    { class: "msg-reply", dataset: { replyTo: String(reply.id ?? "") } },
    h("span", { class: "msg-reply-author", text: displayName(reply.author) }),
    " ",
    h("span", { class: "msg-reply-excerpt", text: reply.excerpt || "" }),
  );
}

/**
 * ctx: {me, canModerate}. Returns an <li> for the message event.
 */
export function renderMessage(event, ctx = {}) {
  const me = ctx.me;
  const mine = me?.id != null && event.author?.id === me.id;
  const mentionsMe = me?.id != null && (event.mentions || []).some((u) => u?.id === me.id);
  const li = h("li", {
    class: ["line", "msg", mine && "mine", mentionsMe && "mentions-me"].filter(Boolean).join(" "),
    dataset: { seq: String(event.seq ?? ""), messageId: String(event.id ?? ""), authorId: String(event.author?.id ?? "") },
  });
  if (event.client_id) li.dataset.clientId = event.client_id;
  li.append(
    ...[replyQuote(event.reply_to)].filter(Boolean),
    h(
      "div",
      { class: "msg-line" },
      timeNode(event.ts),
      " ",
      h("span", { class: "msg-who" }, ...userLabel(event.author)),
      h("span", { class: "msg-sep", "aria-hidden": "true", text: ": " }),
      h("span", { class: "msg-body" }, ...bodyNodes(event.body ?? "", event.mentions)),
    ),
  );
  if (event.deleted) markDeleted(li);
  else if (ctx.signedIn) li.append(messageActions({ reply: true, remove: mine || ctx.canModerate }));
  return li;
}

function messageActions({ reply, remove }) {
  return h(
    "div",
    { class: "msg-actions" },
    reply ? h("button", { type: "button", class: "icon-button", dataset: { action: "reply" }, title: "Reply", "aria-label": "Reply", text: "↩" }) : null,
    remove ? h("button", { type: "button", class: "icon-button", dataset: { action: "delete" }, title: "Delete", "aria-label": "Delete message", text: "🗑" }) : null,
  );
}

export function markDeleted(li) {
  li.classList.add("deleted");
  const body = li.querySelector(".msg-body");
  if (body) body.textContent = "message deleted";
  li.querySelector(".msg-actions")?.remove();
}

/** A message this tab is sending: shown at once, greyed, until the room echoes it. */
export function renderPending(entry, me) {
  const li = h("li", { class: "line msg mine pending", dataset: { clientId: entry.clientId } });
  const quote = entry.replyTo
    ? replyQuote({ id: entry.replyTo.id, author: { name: entry.replyTo.name }, excerpt: entry.replyTo.excerpt })
    : null;
  li.append(
    ...[quote].filter(Boolean),
    h(
      "div",
      { class: "msg-line" },
      timeNode(new Date().toISOString()),
      " ",
      h("span", { class: "msg-who" }, ...userLabel(me)),
      h("span", { class: "msg-sep", "aria-hidden": "true", text: ": " }),
      h("span", { class: "msg-body", text: entry.body }),
    ),
    h("div", { class: "pending-state" },
      h("span", { class: "pending-label" }),
      h("span", { class: "pending-buttons" },
        h("button", { type: "button", class: "link-button", dataset: { action: "retry" }, text: "Retry" }),
        h("button", { type: "button", class: "link-button", dataset: { action: "edit" }, text: "Edit" }),
        h("button", { type: "button", class: "link-button", dataset: { action: "discard" }, text: "Discard" }),
      ),
    ),
  );
  updatePending(li, entry);
  return li;
}

export function updatePending(li, entry, now = Date.now()) {
  li.classList.toggle("failed", entry.state === "failed");
  li.classList.toggle("acked", entry.state === "sent");
  const label = li.querySelector(".pending-label");
  const retry = li.querySelector('[data-action="retry"]');
  const buttons = li.querySelector(".pending-buttons");
  buttons.hidden = entry.state !== "failed";
  if (entry.state === "failed") {
    const left = Math.ceil((entry.retryAt - now) / 1000);
    label.textContent = left > 0 ? `${entry.detail} Retry in ${left} s.` : entry.detail;
    retry.disabled = left > 0;
    if (left > 0) li.dataset.countdownUntil = String(entry.retryAt);
    else delete li.dataset.countdownUntil;
  } else {
    label.textContent = entry.state === "sent" ? "sent" : "sending…";
    delete li.dataset.countdownUntil;
  }
}

function systemLine(kind, text, event, extra = []) {
  return h(
    "li",
    { class: `line system system-${kind}`, dataset: { seq: String(event.seq ?? "") } },
    timeNode(event.ts),
    " ",
    h("span", { class: "system-text", text }),
    ...extra,
  );
}

export function renderNotice(event) {
  const level = event.level === "warning" ? "warning" : "info";
  const li = h(
    "li",
    { class: `line notice notice-${level}`, dataset: { seq: String(event.seq ?? ""), noticeId: String(event.id ?? "") } },
    h("span", { class: "notice-label", text: event.scope === "site" ? "Site notice" : "Announcement" }),
    h("span", { class: "notice-body", text: event.body || "" }),
    event.by ? h("span", { class: "notice-by", text: `— ${displayName(event.by)}` }) : null,
  );
  return li;
}

export function renderTip(event) {
  const amount = Number(event.amount) || 0;
  return h(
    "li",
    { class: "line tip", dataset: { seq: String(event.seq ?? ""), tipId: String(event.id ?? "") } },
    h("span", { class: "tip-amount", text: `${amount.toLocaleString()} coins` }),
    h("span", { class: "tip-from" }, ...userLabel(event.from), " tipped"),
    event.body ? h("span", { class: "tip-body", text: event.body }) : null,
  );
}

/**
 * One line for a room event, or null for events that only change existing lines.
 * ctx: {me, signedIn, canModerate, roomBefore}.
 */
export function renderEvent(event, ctx = {}) {
  switch (event.type) {
    case "message":
      return renderMessage(event, ctx);
    case "notice":
      return renderNotice(event);
    case "tip":
      return renderTip(event);
    case "moderation":
      return systemLine("moderation", describeModeration(event), event);
    case "room": {
      const lines = describeRoomChange(ctx.roomBefore, event);
      return lines.length ? systemLine("room", lines.join(" · "), event) : null;
    }
    default:
      return null;
  }
}

// Panels.

function personItem(user) {
  return h("li", { class: "person", dataset: { userId: String(user.id) } }, ...userLabel(user));
}

export function renderRoster(els, roster) {
  els.count.textContent = `${roster.count} online`;
  const team = roster.teamList();
  els.team.replaceChildren(...team.map(personItem));
  els.teamEmpty.hidden = team.length > 0;
  els.audience.replaceChildren(...roster.audienceList().map(personItem));
  const unlisted = roster.unlisted;
  els.more.hidden = unlisted === 0;
  els.more.textContent = unlisted ? `+ ${unlisted} more watching` : "";
}

const STATUS_TEXT = {
  connecting: () => "Connecting…",
  live: () => "Connected",
  offline: () => "Offline: waiting for the network",
  reconnecting: (s, now) => `Reconnecting in ${Math.max(1, Math.ceil((s.retryAt - now) / 1000))} s`,
  stopped: (s) =>
    ({ forbidden: "You can't join this room", not_found: "This room does not exist" })[s.reason] || "Disconnected",
};

export function statusText(status, now = Date.now()) {
  return (STATUS_TEXT[status.state] || STATUS_TEXT.connecting)(status, now);
}

export function renderStatus(el, status, now = Date.now()) {
  el.dataset.state = status.state;
  el.textContent = statusText(status, now);
  if (status.state === "reconnecting") el.dataset.countdownUntil = String(status.retryAt);
  else delete el.dataset.countdownUntil;
}

export function toast(container, text, { level = "error", ms = 5000 } = {}) {
  const node = h("div", { class: `toast toast-${level}`, role: "status", text });
  container.append(node);
  setTimeout(() => node.remove(), ms);
  return node;
}
