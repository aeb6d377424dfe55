/**
 * The overlay (/rooms/<slug>/overlay/): the room's live chat for a browser source in
 * streaming software. Read-only, on the same connection module as the page, so it
 * resumes exactly once after any drop; lines are drawn by the page's own renderer.
 *
 * Two modes:
 * - list: the latest lines stacked at the bottom, each fading out after `fade` seconds
 *   (0: lines stay until newer ones push them out);
 * - danmaku: lines fly right to left across the scene in lanes. Every line moves at the
 *   same speed, and a lane takes its next line only once the last one's tail has come
 *   in plus a gap, so lines in a lane never touch. Lines wait while every lane is busy;
 *   past a bounded wait the oldest chat lines are dropped (tips and notices never are).
 */
import { RoomConnection } from "./connection.js";
import { renderEvent } from "./render.js";

const LIST_MAX_LINES = 50;
const LIST_HISTORY_LINES = 20;
const FADE_OUT_MS = 800;
// Danmaku: lane height in text lines, the space between lines in a lane, the speed (a
// line crosses a 1920 px scene in about 8 s), at most this many lanes, and how many
// lines may wait for a lane before the oldest chat lines are dropped.
const LANE_HEIGHT_EM = 1.6;
const LANE_GAP_PX = 48;
const SPEED_PX_PER_S = 240;
const MAX_LANES = 12;
const MAX_WAITING = 24;

const root = document.getElementById("overlay");
const options = {
  mode: root.dataset.mode,
  tips: root.dataset.tips,
  font: Number(root.dataset.font),
  fade: Number(root.dataset.fade),
};
document.documentElement.style.setProperty("--overlay-font", `${options.font}px`);
const stage = document.getElementById("overlay-lines");

/** Whether the overlay shows this room event at all (`tips=only`: tips alone). */
export function shown(event, tips) {
  if (event.type === "tip") return true;
  if (tips === "only") return false;
  return (event.type === "message" && !event.deleted) || event.type === "notice";
}

function lineFor(event) {
  const node = renderEvent(event, { me: null, signedIn: false });
  node?.classList.add("overlay-line");
  return node;
}

class OverlayList {
  constructor(list, { fade }) {
    this.list = list;
    this.fadeMs = fade * 1000;
  }

  add(event) {
    const node = lineFor(event);
    if (!node) return;
    this.list.append(node);
    while (this.list.children.length > LIST_MAX_LINES) this.list.firstElementChild.remove();
    if (this.fadeMs > 0) setTimeout(() => this.#fadeOut(node), this.fadeMs);
  }

  #fadeOut(node) {
    node.classList.add("fading");
    setTimeout(() => node.remove(), FADE_OUT_MS);
  }

  removeMessage(id) {
    this.list.querySelector(`:scope > li.msg[data-message-id="${id}"]`)?.remove();
  }

  history(events) {
    for (const event of events.slice(-LIST_HISTORY_LINES)) this.add(event);
  }
}

class Danmaku {
  constructor(stage) {
    this.stage = stage;
    // Per lane: when (ms) the lane's last line will have come in far enough for the next.
    this.freeAt = [];
    this.waiting = [];
    this.timer = null;
  }

  laneCount() {
    const laneHeight = options.font * LANE_HEIGHT_EM;
    return Math.max(1, Math.min(MAX_LANES, Math.floor(this.stage.clientHeight / laneHeight)));
  }

  add(event) {
    this.waiting.push(event);
    if (this.waiting.length > MAX_WAITING) {
      // Stale chat goes first; what the streamer must see (tips, notices) stays.
      const stale = this.waiting.findIndex((e) => e.type === "message");
      if (stale >= 0) this.waiting.splice(stale, 1);
    }
    this.#launchWaiting();
  }

  removeMessage(id) {
    this.waiting = this.waiting.filter((e) => !(e.type === "message" && e.id === id));
    this.stage.querySelector(`:scope > li.msg[data-message-id="${id}"]`)?.remove();
  }

  history() {
    // Lines from before the overlay opened would all fly at once: danmaku is live only.
  }

  #freeLane(now) {
    const lanes = this.laneCount();
    for (let lane = 0; lane < lanes; lane += 1) {
      if ((this.freeAt[lane] ?? 0) <= now) return lane;
    }
    return -1;
  }

  #launchWaiting() {
    clearTimeout(this.timer);
    this.timer = null;
    while (this.waiting.length) {
      const now = performance.now();
      const lane = this.#freeLane(now);
      if (lane < 0) {
        const next = Math.min(...this.freeAt.slice(0, this.laneCount()));
        this.timer = setTimeout(() => this.#launchWaiting(), Math.max(16, next - now));
        return;
      }
      this.#launch(this.waiting.shift(), lane, now);
    }
  }

  #launch(event, lane, now) {
    const node = lineFor(event);
    if (!node) return;
    node.classList.add("danmaku-item");
    node.dataset.lane = String(lane);
    node.style.top = `${lane * options.font * LANE_HEIGHT_EM}px`;
    this.stage.append(node);
    const width = node.offsetWidth;
    const scene = this.stage.clientWidth;
    const flight = node.animate(
      [{ transform: `translateX(${scene}px)` }, { transform: `translateX(${-width}px)` }],
      { duration: ((scene + width) / SPEED_PX_PER_S) * 1000, easing: "linear", fill: "forwards" },
    );
    flight.onfinish = () => node.remove();
    this.freeAt[lane] = now + ((width + LANE_GAP_PX) / SPEED_PX_PER_S) * 1000;
  }
}

const view = options.mode === "danmaku" ? new Danmaku(stage) : new OverlayList(stage, options);

function apply(event) {
  if (event.type === "message_deleted") view.removeMessage(event.id);
  else if (shown(event, options.tips)) view.add(event);
}

const connection = new RoomConnection({
  path: root.dataset.wsPath,
  handlers: {
    status: (status) => {
      root.dataset.state = status.state;
    },
    welcome: (welcome, { resumed }) => {
      if (!resumed) view.history((welcome.history || []).filter((event) => shown(event, options.tips)));
    },
    event: apply,
    // A broadcast outside the room log (no seq), as the page shows it.
    frame: (frame) => {
      if (frame.type === "notice" && options.tips !== "only") view.add(frame);
    },
  },
});

connection.start();
