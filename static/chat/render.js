/**
 * DOM rendering for the room page.
 *
 * Every piece of text that came from a user or the server goes in through
 * textContent / text nodes, never innerHTML: chat bodies, names, titles and reasons
 * are untrusted.
 */

import { allowedOn, canDelete, isTeam } from "./roles.js";
import { format, gettext, ngettext, pageLocale } from "./i18n.js";
import { prefs } from "./prefs.js";
import { tokenize } from "./richtext.js";
import { emoteMap, emoteNodes } from "./emotes.js";

export { isTeam };

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

const SVG = "http://www.w3.org/2000/svg";
// Stroke paths on a 24-unit grid; drawn inline so they need no font and no request.
const ICONS = {
  reply: ["M9 14 4 9l5-5", "M4 9h10.5a5.5 5.5 0 0 1 0 11H11"],
  trash: ["M4 7h16", "M9 7V4h6v3", "M6 7l1 13h10l1-13", "M10 11v6", "M14 11v6"],
  more: ["M5 12h.01", "M12 12h.01", "M19 12h.01"],
  coin: ["M12 3a9 9 0 1 0 0 18 9 9 0 0 0 0-18z", "M14.8 9.2c-.4-.9-1.5-1.5-2.8-1.5-1.7 0-2.9.9-2.9 2.1 0 2.9 5.8 1.4 5.8 4.3 0 1.2-1.2 2.1-2.9 2.1-1.4 0-2.5-.6-2.9-1.6", "M12 6v1.7", "M12 16.3V18"],
  shield: ["M12 3l8 3v6c0 4.6-3.4 8.3-8 9-4.6-.7-8-4.4-8-9V6z"],
  close: ["M6 6l12 12", "M18 6 6 18"],
};

export function icon(name) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("class", `icon icon-${name}`);
  svg.setAttribute("aria-hidden", "true");
  for (const d of ICONS[name] || []) {
    const path = document.createElementNS(SVG, "path");
    path.setAttribute("d", d);
    svg.append(path);
  }
  return svg;
}

// Pure helpers.

/** A clock time in the page's language, on the viewer's 12/24-hour choice. */
export function formatTime(iso) {
  const date = iso ? new Date(iso) : null;
  if (!date || Number.isNaN(date.getTime())) return "";
  const options = { hour: "numeric", minute: "2-digit" };
  if (prefs.hour24 != null) options.hourCycle = prefs.hour24 ? "h23" : "h12";
  return date.toLocaleTimeString(pageLocale(), options);
}

/** A full date and time in the page's language (tooltips, the user card). */
export function formatDateTime(iso, options = { dateStyle: "medium", timeStyle: "short" }) {
  const date = iso ? new Date(iso) : null;
  if (!date || Number.isNaN(date.getTime())) return "";
  const opts = { ...options };
  if (opts.timeStyle && prefs.hour24 != null) opts.hourCycle = prefs.hour24 ? "h23" : "h12";
  return date.toLocaleString(pageLocale(), opts);
}

export function formatDuration(seconds) {
  const s = Math.round(seconds);
  if (s < 60) return format(gettext("%(n)s s"), { n: s });
  if (s < 3600) return format(gettext("%(n)s min"), { n: Math.round(s / 60) });
  if (s < 86400) return format(gettext("%(n)s h"), { n: Math.round(s / 3600) });
  if (s === 604800) return gettext("1 week");
  return format(ngettext("%(n)s day", "%(n)s days", Math.round(s / 86400)), { n: Math.round(s / 86400) });
}

/** A number of coins, grouped the page's way: "1,000 coins", "1,000 金币". */
export function formatCoins(n) {
  const count = Number(n) || 0;
  return format(ngettext("%(n)s coin", "%(n)s coins", count), { n: formatNumber(count) });
}

export function formatNumber(n) {
  return (Number(n) || 0).toLocaleString(pageLocale());
}

/** A countdown for people: "0:42", "4:59", "1:02:03", "6 d 23 h". */
export function formatCountdown(ms) {
  const total = Math.max(0, Math.ceil(ms / 1000));
  const days = Math.floor(total / 86400);
  const hours = Math.floor((total % 86400) / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const seconds = total % 60;
  const pad = (n) => String(n).padStart(2, "0");
  if (days > 0) return format(gettext("%(days)s d %(hours)s h"), { days, hours });
  if (hours > 0) return `${hours}:${pad(minutes)}:${pad(seconds)}`;
  return `${minutes}:${pad(seconds)}`;
}

export function displayName(user) {
  return user?.name || gettext("someone");
}

/** The badges a user carries, in display order. */
export function badgesFor(user) {
  const badges = [];
  if (user?.staff) badges.push({ key: "staff", label: gettext("STAFF") });
  if (user?.role === "host") badges.push({ key: "host", label: gettext("HOST") });
  else if (user?.role === "moderator") badges.push({ key: "mod", label: gettext("MOD") });
  return badges;
}


export function describeModeration(event) {
  const values = {
    target: displayName(event.target),
    by: displayName(event.by),
    reason: event.reason || "",
    span: event.seconds ? formatDuration(event.seconds) : "",
    until: event.until ? formatTime(event.until) : "",
  };
  const by = Boolean(event.by);
  const why = Boolean(event.reason);
  // Whole sentences, so that each language can order them its own way.
  const pick = (withBy, withoutBy) => format(by ? withBy : withoutBy, values);
  switch (event.action) {
    case "mute":
    case "ban": {
      const ban = event.action === "ban";
      let text;
      if (event.seconds) {
        text = ban
          ? pick(gettext("%(target)s was banned for %(span)s by %(by)s"), gettext("%(target)s was banned for %(span)s"))
          : pick(gettext("%(target)s was muted for %(span)s by %(by)s"), gettext("%(target)s was muted for %(span)s"));
      } else if (event.until) {
        text = ban
          ? pick(gettext("%(target)s was banned until %(until)s by %(by)s"), gettext("%(target)s was banned until %(until)s"))
          : pick(gettext("%(target)s was muted until %(until)s by %(by)s"), gettext("%(target)s was muted until %(until)s"));
      } else {
        text = ban
          ? pick(gettext("%(target)s was banned permanently by %(by)s"), gettext("%(target)s was banned permanently"))
          : pick(gettext("%(target)s was muted by %(by)s"), gettext("%(target)s was muted"));
      }
      return why ? format(gettext("%(text)s (%(reason)s)"), { text, reason: values.reason }) : text;
    }
    case "unmute":
      return pick(gettext("%(target)s was unmuted by %(by)s"), gettext("%(target)s was unmuted"));
    case "unban":
      return pick(gettext("%(target)s was unbanned by %(by)s"), gettext("%(target)s was unbanned"));
    case "kick": {
      const text = pick(gettext("%(target)s was removed from the room by %(by)s"), gettext("%(target)s was removed from the room"));
      return why ? format(gettext("%(text)s (%(reason)s)"), { text, reason: values.reason }) : text;
    }
    case "slow_mode":
      values.span = formatDuration(event.seconds || 0);
      return event.seconds
        ? pick(gettext("Slow mode is on: one message every %(span)s by %(by)s"), gettext("Slow mode is on: one message every %(span)s"))
        : pick(gettext("Slow mode is off by %(by)s"), gettext("Slow mode is off"));
    default:
      return format(gettext("Moderation: %(action)s"), { action: event.action });
  }
}

/** What a `room` event changed, compared with the state before it (null: unknown). */
export function describeRoomChange(before, after) {
  if (!before) return [after.is_live ? gettext("The stream is live") : gettext("The stream is offline")];
  const lines = [];
  if (before.is_live !== after.is_live) lines.push(after.is_live ? gettext("The stream is live") : gettext("The stream has ended"));
  if (after.title != null && before.title !== after.title) lines.push(format(gettext("Title changed to “%(title)s”"), { title: after.title }));
  // Slow mode changes arrive as their own moderation event; saying it twice is noise.
  return lines;
}


// Message lines.

/** Badges and name; `card`: the name opens the person's card (signed-in viewers). */
function userLabel(user, { card = false } = {}) {
  const role = user?.role || "member";
  const name = card && user?.id != null
    ? h("button", { type: "button", class: `author author-button role-${role}`, tabindex: "-1", dataset: { action: "card" }, text: displayName(user) })
    : h("span", { class: `author role-${role}`, text: displayName(user) });
  return [...badgesFor(user).map((b) => h("span", { class: `badge badge-${b.key}`, text: b.label })), name];
}

/** The person a line is about, kept on the node so menus can act on them. */
function personData(user) {
  if (user?.id == null) return {};
  const data = { authorId: String(user.id), authorName: user.name || "", authorRole: user.role || "member" };
  if (user.staff) data.authorStaff = "true";
  return data;
}

export function personFrom(node) {
  const d = node?.dataset;
  if (!d?.authorId) return null;
  return { id: Number(d.authorId), name: d.authorName || "", role: d.authorRole || "member", staff: d.authorStaff === "true" };
}

export function timeNode(iso) {
  return h("time", { class: "msg-time", datetime: iso || null, title: formatDateTime(iso) || null, text: formatTime(iso) });
}

/** Re-read every shown time after the clock setting changed. */
export function refreshTimes(root) {
  for (const node of root.querySelectorAll("time.msg-time[datetime]")) {
    const iso = node.getAttribute("datetime");
    node.textContent = formatTime(iso);
    node.title = formatDateTime(iso);
  }
}

/**
 * A message body: text, the names it mentions set off, and http(s) links as real links.
 * Built from text nodes and elements only: a body is never parsed as markup.
 */
export function bodyNodes(body, mentions = [], emotes = []) {
  const names = (mentions || []).map((u) => String(u?.name || "")).filter(Boolean);
  const images = emoteMap(emotes);
  return tokenize(body, names).flatMap((piece) => {
    if (piece.href) return h("a", { class: "msg-link", href: piece.href, rel: "noopener nofollow ugc", target: "_blank", tabindex: "-1", text: piece.text });
    if (piece.mention) return h("span", { class: "mention-token", text: piece.text });
    return emoteNodes(piece.text, images);
  });
}

function replyQuote(reply) {
  if (!reply) return null;
  const deleted = Boolean(reply.deleted) || (reply.excerpt === "" && reply.deleted !== false);
  return h(
    "div",
    {
      class: `msg-reply${deleted ? " is-deleted" : ""}`,
      role: "button",
      tabindex: "-1",
      title: gettext("Show the original message"),
      dataset: { replyTo: String(reply.id ?? "") },
    },
    h("span", { class: "msg-reply-author", text: displayName(reply.author) }),
    " ",
    h("span", { class: "msg-reply-excerpt", text: deleted ? gettext("message deleted") : reply.excerpt || "" }),
  );
}

// Tab stops once at the list, not at every button in it: the buttons are reached with
// the arrow keys (room.js, roving focus), so their tabindex is -1.
function actionButton(action, label, iconName, extra = {}) {
  return h("button", { type: "button", class: "icon-button", tabindex: "-1", dataset: { action }, title: label, "aria-label": label, ...extra }, icon(iconName));
}

function lineActions({ reply = false, remove = false, more = false }) {
  if (!reply && !remove && !more) return null;
  return h(
    "div",
    { class: "msg-actions" },
    reply ? actionButton("reply", gettext("Reply"), "reply") : null,
    remove ? actionButton("delete", gettext("Delete message"), "trash") : null,
    more ? actionButton("more", gettext("More actions"), "more", { "aria-haspopup": "menu", "aria-expanded": "false" }) : null,
  );
}

/** ctx: {me, signedIn}. Returns an <li> for the message event. */
export function renderMessage(event, ctx = {}) {
  const me = ctx.me;
  const author = event.author || null;
  const mine = me?.id != null && author?.id === me.id;
  const mentionsMe = me?.id != null && (event.mentions || []).some((u) => u?.id === me.id);
  const li = h("li", {
    class: ["line", "msg", mine && "mine", mentionsMe && "mentions-me", isTeam(author) && "by-team"].filter(Boolean).join(" "),
    dataset: { seq: String(event.seq ?? ""), messageId: String(event.id ?? ""), ...personData(author) },
  });
  if (event.client_id) li.dataset.clientId = event.client_id;
  li.append(
    ...[replyQuote(event.reply_to)].filter(Boolean),
    h(
      "div",
      { class: "msg-line" },
      timeNode(event.ts),
      " ",
      h("span", { class: "msg-who" }, ...userLabel(author, { card: ctx.signedIn })),
      h("span", { class: "msg-sep", "aria-hidden": "true", text: gettext(": ") }),
      h("span", { class: "msg-body" }, ...bodyNodes(event.body ?? "", event.mentions, event.emotes)),
    ),
  );
  if (event.deleted) markDeleted(li);
  else if (ctx.signedIn) {
    const actions = lineActions({ reply: true, remove: canDelete(me, author), more: allowedOn(me, author).block });
    if (actions) li.append(actions);
  }
  return li;
}

/**
 * Show a collapsed line of `count` identical messages (a burst) with its "×N" badge, or
 * as a plain line again when one is left. The badge is aria-hidden and the rest are
 * attribute changes: the log announced the line once and must not announce each repeat;
 * who sent them is the line's description, read on hover and on focus.
 */
export function paintBurst(li, { count, body, names }) {
  let badge = li.querySelector(".msg-burst");
  if (count < 2) {
    badge?.remove();
    li.classList.remove("burst");
    li.removeAttribute("title");
    li.removeAttribute("aria-description");
    delete li.dataset.burstCount;
    return;
  }
  if (!badge) {
    badge = h("span", { class: "msg-burst", "aria-hidden": "true" });
    li.querySelector(".msg-body").after(badge);
  }
  li.classList.add("burst");
  li.dataset.burstCount = String(count);
  badge.textContent = `×${formatNumber(count)}`;
  const description = burstDescription(count, body, names);
  li.title = description;
  li.setAttribute("aria-description", description);
}

// Enough names to recognise the crowd; past these the description only counts.
const BURST_NAMES = 8;
let listFormat = null;

function burstDescription(count, body, names) {
  const people = names.length;
  const shown = names.slice(0, BURST_NAMES);
  if (people > shown.length) {
    const more = people - shown.length;
    shown.push(format(ngettext("%(n)s other", "%(n)s others", more), { n: formatNumber(more) }));
  }
  listFormat ??= new Intl.ListFormat(pageLocale(), { type: "conjunction" });
  const list = listFormat.format(shown);
  const values = { n: formatNumber(people), count: formatNumber(count), body, names: list };
  return people === count
    ? format(ngettext("%(n)s person sent “%(body)s”: %(names)s", "%(n)s people sent “%(body)s”: %(names)s", people), values)
    : format(
      ngettext(
        "%(n)s person sent “%(body)s” %(count)s times: %(names)s",
        "%(n)s people sent “%(body)s” %(count)s times: %(names)s",
        people,
      ),
      values,
    );
}

/**
 * Point a collapsed line at another of its messages (the one it showed was deleted, or
 * its author blocked): its time, author and actions, and the ids that replies and
 * deletes use. The body is the same by definition.
 */
export function retargetMessage(li, event, ctx = {}) {
  const fresh = renderMessage(event, ctx);
  for (const key of Object.keys(li.dataset)) if (key.startsWith("author")) delete li.dataset[key];
  for (const key of ["seq", "messageId", "authorId", "authorName", "authorRole", "authorStaff"]) {
    if (key in fresh.dataset) li.dataset[key] = fresh.dataset[key];
  }
  li.querySelector(".msg-time").replaceWith(fresh.querySelector(".msg-time"));
  li.querySelector(".msg-who").replaceWith(fresh.querySelector(".msg-who"));
  li.querySelector(".msg-actions")?.remove();
  const actions = fresh.querySelector(".msg-actions");
  if (actions) li.append(actions);
}

export function markDeleted(li) {
  li.classList.add("deleted");
  const body = li.querySelector(".msg-body");
  if (body) body.textContent = gettext("message deleted");
  li.querySelector(".msg-actions")?.remove();
}

/** A message this tab is sending: shown at once, greyed, until the room echoes it. */
export function renderPending(entry, me) {
  const li = h("li", {
    class: ["line msg mine pending", isTeam(me) && "by-team"].filter(Boolean).join(" "),
    dataset: { clientId: entry.clientId },
  });
  const quote = entry.replyTo
    ? replyQuote({ id: entry.replyTo.id, author: { name: entry.replyTo.name }, excerpt: entry.replyTo.excerpt, deleted: false })
    : null;
  li.append(
    ...[quote].filter(Boolean),
    h(
      "div",
      { class: "msg-line" },
      timeNode(new Date().toISOString()),
      " ",
      h("span", { class: "msg-who" }, ...userLabel(me)),
      h("span", { class: "msg-sep", "aria-hidden": "true", text: gettext(": ") }),
      h("span", { class: "msg-body", text: entry.body }),
    ),
    h("div", { class: "pending-state" },
      h("span", { class: "pending-label" }),
      h("span", { class: "pending-buttons" },
        h("button", { type: "button", class: "link-button", tabindex: "-1", dataset: { action: "retry" }, text: gettext("Retry") }),
        h("button", { type: "button", class: "link-button", tabindex: "-1", dataset: { action: "edit" }, text: gettext("Edit") }),
        h("button", { type: "button", class: "link-button", tabindex: "-1", dataset: { action: "discard" }, text: gettext("Discard") }),
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
    const left = entry.retryAt - now;
    label.textContent = left > 0 ? format(gettext("%(detail)s Retry in %(time)s."), { detail: entry.detail, time: retryText(left) }) : entry.detail;
    retry.disabled = left > 0;
    if (left > 0) li.dataset.countdownUntil = String(entry.retryAt);
    else delete li.dataset.countdownUntil;
  } else {
    label.textContent = entry.state === "sent" ? gettext("sent") : gettext("sending…");
    delete li.dataset.countdownUntil;
  }
}

function retryText(ms) {
  const seconds = Math.ceil(ms / 1000);
  return seconds < 60 ? format(gettext("%(n)s s"), { n: seconds }) : formatCountdown(ms);
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

/** "X joined" / "X left": from presence, not the log, so it carries no seq. */
export function renderPresenceLine(user, verb) {
  const text = verb === "joined" ? gettext("joined") : gettext("left");
  return h(
    "li",
    { class: `line system system-presence${isTeam(user) ? " by-team" : ""}`, dataset: personData(user) },
    timeNode(new Date().toISOString()),
    " ",
    h("span", { class: "msg-who" }, ...userLabel(user)),
    h("span", { class: "system-text", text: ` ${text}` }),
  );
}

export function renderNotice(event) {
  const level = event.level === "warning" ? "warning" : "info";
  const li = h(
    "li",
    { class: `line notice notice-${level}`, dataset: { seq: String(event.seq ?? ""), noticeId: String(event.id ?? "") } },
    h("span", { class: "notice-label", text: event.scope === "site" ? gettext("Site notice") : gettext("Announcement") }),
    h("span", { class: "notice-body" }, ...bodyNodes(event.body || "")),
    event.by ? h("span", { class: "notice-by", text: `— ${displayName(event.by)}` }) : null,
  );
  return li;
}

export function isHighlightTip(event) {
  return typeof event.highlight === "boolean" ? event.highlight : Number(event.amount) >= 10;
}

export function renderTip(event, ctx = {}) {
  const amount = Number(event.amount) || 0;
  const from = event.from || null;
  const li = h(
    "li",
    {
      class: `line tip${isHighlightTip(event) ? " tip-highlight" : ""}`,
      dataset: { seq: String(event.seq ?? ""), tipId: String(event.id ?? ""), ...personData(from) },
    },
    h("span", { class: "tip-amount" }, icon("coin"), formatCoins(amount)),
    h("span", { class: "tip-from" }, ...userLabel(from, { card: ctx.signedIn }), " ", gettext("tipped")),
    event.body ? h("span", { class: "tip-body", text: event.body }) : null,
  );
  if (ctx.signedIn) {
    const actions = lineActions({ more: allowedOn(ctx.me, from).block });
    if (actions) li.append(actions);
  }
  return li;
}

/** A compact copy of a pinned tip or notice for the strip, counting down its pin. */
export function renderPinned(event) {
  const until = new Date(event.pinned_until).getTime();
  const countdown = h("span", {
    class: "countdown",
    dataset: { until: String(until) },
    title: format(gettext("Pinned until %(time)s"), { time: formatTime(event.pinned_until) }),
    text: formatCountdown(until - Date.now()),
  });
  if (event.type === "tip") {
    return h(
      "li",
      { class: `pinned-item pinned-tip${isHighlightTip(event) ? " tip-highlight" : ""}`, dataset: { seq: String(event.seq ?? ""), ...personData(event.from) } },
      h("span", { class: "tip-amount" }, icon("coin"), formatNumber(event.amount)),
      h("span", { class: "tip-from" }, ...userLabel(event.from)),
      event.body ? h("span", { class: "pinned-body", text: event.body }) : null,
      countdown,
    );
  }
  const level = event.level === "warning" ? "warning" : "info";
  return h(
    "li",
    { class: `pinned-item pinned-notice notice-${level}`, dataset: { seq: String(event.seq ?? "") } },
    h("span", { class: "notice-label", text: event.scope === "site" ? gettext("Site") : gettext("Announcement") }),
    h("span", { class: "pinned-body", text: event.body || "" }),
    countdown,
  );
}

/**
 * One line for a room event, or null for events that only change existing lines.
 * ctx: {me, signedIn, roomBefore}.
 */
export function renderEvent(event, ctx = {}) {
  switch (event.type) {
    case "message":
      return renderMessage(event, ctx);
    case "notice":
      return renderNotice(event);
    case "tip":
      return renderTip(event, ctx);
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

function personItem(user, interactive) {
  if (!interactive) return h("li", { class: "person", dataset: { userId: String(user.id) } }, ...userLabel(user));
  return h(
    "li",
    { class: "person", dataset: { userId: String(user.id) } },
    h(
      "button",
      { type: "button", class: "person-button", dataset: { action: "person", ...personData(user) }, "aria-haspopup": "menu", "aria-expanded": "false" },
      ...userLabel(user),
    ),
  );
}

/** opts.interactive(user): whether the person opens a menu for this viewer. */
export function renderRoster(els, roster, { interactive = () => false } = {}) {
  const online = format(ngettext("%(n)s online", "%(n)s online", roster.count), { n: formatNumber(roster.count) });
  els.count.textContent = online;
  if (els.toggle) {
    els.toggleCount.textContent = online;
    els.toggle.setAttribute("aria-label", format(gettext("People: %(online)s"), { online }));
  }
  const team = roster.teamList();
  els.team.replaceChildren(...team.map((u) => personItem(u, interactive(u))));
  els.teamEmpty.hidden = team.length > 0;
  els.audience.replaceChildren(...roster.audienceList().map((u) => personItem(u, interactive(u))));
  const unlisted = roster.unlisted;
  els.more.hidden = unlisted === 0;
  els.more.textContent = unlisted ? format(ngettext("+ %(n)s more watching", "+ %(n)s more watching", unlisted), { n: formatNumber(unlisted) }) : "";
}

const STATUS_TEXT = {
  connecting: () => gettext("Connecting…"),
  live: () => gettext("Connected"),
  offline: () => gettext("Offline: waiting for the network"),
  reconnecting: (s, now) => format(gettext("Reconnecting in %(n)s s"), { n: Math.max(1, Math.ceil((s.retryAt - now) / 1000)) }),
  stopped: (s) =>
    ({
      forbidden: gettext("You can't join this room"),
      banned: gettext("You are banned from this room"),
      not_found: gettext("This room does not exist"),
    })[s.reason] || gettext("Disconnected"),
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
