/**
 * Keeps the chat pinned to the newest line while the reader is at the bottom, and
 * counts what arrives while they have scrolled up to read.
 */
import { format, ngettext } from "./i18n.js";

const SLACK_PX = 48;

export function isNearBottom(el, slack = SLACK_PX) {
  return el.scrollHeight - el.scrollTop - el.clientHeight <= slack;
}

export class StickyScroll {
  constructor(scroller, jumpButton) {
    this.el = scroller;
    this.jump = jumpButton;
    this.stuck = true;
    this.unseen = 0;
    this.frame = 0;
    this.lastTop = scroller.scrollTop;
    scroller.addEventListener("scroll", () => {
      const top = scroller.scrollTop;
      if (isNearBottom(scroller)) this.stuck = true;
      // Only the reader scrolling up lets go of the bottom. A box that shrank (the pinned
      // strip filling in) moves the bottom away without the reader having moved.
      else if (top < this.lastTop) this.stuck = false;
      this.lastTop = top;
      if (this.stuck) this.#setUnseen(0);
    }, { passive: true });
    jumpButton.addEventListener("click", () => this.toBottom());
    // The composer growing or the window resizing must not unpin a reader at the bottom.
    new ResizeObserver(() => {
      if (this.stuck) this.el.scrollTop = this.el.scrollHeight;
    }).observe(scroller);
  }

  /** Call after appending `added` lines the reader has not seen. */
  appended(added) {
    if (this.stuck) this.#toBottomSoon();
    else if (added > 0) this.#setUnseen(this.unseen + added);
  }

  toBottom() {
    this.el.scrollTop = this.el.scrollHeight;
    this.stuck = true;
    this.#setUnseen(0);
  }

  // Reading scrollHeight forces a layout; a busy room appends many lines per frame,
  // so scroll once per frame rather than once per line.
  #toBottomSoon() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      if (this.stuck) this.toBottom();
    });
  }

  /** Prepend content above the fold without moving what the reader is looking at. */
  keepPosition(mutate) {
    const fromBottom = this.el.scrollHeight - this.el.scrollTop;
    mutate();
    this.el.scrollTop = this.el.scrollHeight - fromBottom;
  }

  #setUnseen(n) {
    this.unseen = n;
    this.jump.hidden = n === 0;
    this.jump.textContent = format(ngettext("%(n)s new message ↓", "%(n)s new messages ↓", n), { n });
  }
}
