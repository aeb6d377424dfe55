/**
 * One small floating panel at a time, anchored to the button that opened it: menus
 * (role=menu, arrow keys move between items) and little forms (mute, ban, tip).
 *
 * It stays where it opened while the chat scrolls underneath: in a busy room the
 * anchor line keeps moving, and a menu that chased it would slide out from under the
 * pointer. Only when what it shows grows (a card whose details arrive) does it move, as
 * far as it takes to stay on screen. Clicking outside, Esc or a resize closes it.
 */
const MARGIN = 8;

export class Popover {
  constructor(doc = document) {
    this.doc = doc;
    this.el = doc.createElement("div");
    this.el.className = "popover";
    this.el.hidden = true;
    doc.body.append(this.el);
    this.anchor = null;
    this.onClose = null;
    this.placement = "below";
    // () => the element that takes focus when a menu closes and its opener is gone.
    this.fallbackFocus = null;
    doc.addEventListener("pointerdown", (event) => {
      if (this.isOpen && !this.el.contains(event.target) && !this.anchor?.contains(event.target)) this.close();
    }, true);
    doc.addEventListener("keydown", (event) => {
      if (this.isOpen && event.key === "Escape") {
        event.preventDefault();
        this.close({ restoreFocus: true });
      }
    });
    window.addEventListener("resize", () => this.close());
    new ResizeObserver(() => this.isOpen && this.#keepOnScreen()).observe(this.el);
    this.el.addEventListener("keydown", (event) => this.#arrowKeys(event));
  }

  get isOpen() {
    return !this.el.hidden;
  }

  /** Open `content` by `anchor`; opening again from the same anchor toggles it shut. */
  toggle(anchor, content, options = {}) {
    if (this.isOpen && this.anchor === anchor) {
      this.close({ restoreFocus: true });
      return false;
    }
    this.open(anchor, content, options);
    return true;
  }

  open(anchor, content, { placement = "below", label = "", onClose = null, focus = true } = {}) {
    this.close();
    this.anchor = anchor;
    this.placement = placement;
    this.onClose = onClose;
    anchor.setAttribute("aria-expanded", "true");
    this.el.setAttribute("aria-label", label);
    this.show(content, { focus });
  }

  /** Swap what the open popover shows (a menu item leading to its form), same anchor. */
  show(content, { focus = true } = {}) {
    this.el.replaceChildren(content);
    this.el.hidden = false;
    this.#position();
    if (focus) {
      const first =
        this.el.querySelector("[autofocus]") ||
        this.el.querySelector("[role=menuitem]:not([disabled]), input, button:not([disabled])");
      first?.focus({ preventScroll: true });
    }
  }

  close({ restoreFocus = false } = {}) {
    if (!this.isOpen) return;
    const anchor = this.anchor;
    const onClose = this.onClose;
    this.el.hidden = true;
    this.el.replaceChildren();
    this.anchor = null;
    this.onClose = null;
    anchor?.setAttribute("aria-expanded", "false");
    onClose?.();
    if (!restoreFocus) return;
    if (anchor?.isConnected && anchor.offsetParent !== null) anchor.focus({ preventScroll: true });
    else this.fallbackFocus?.()?.focus({ preventScroll: true });
  }

  #position() {
    const box = this.anchor.getBoundingClientRect();
    const el = this.el;
    el.style.left = "0px";
    el.style.top = "0px";
    const width = el.offsetWidth;
    const height = el.offsetHeight;
    const vw = document.documentElement.clientWidth;
    const vh = document.documentElement.clientHeight;
    const below = box.bottom + 4;
    const above = box.top - 4 - height;
    let top = this.placement === "above" ? above : below;
    if (this.placement === "above" && top < MARGIN) top = below;
    if (this.placement !== "above" && top + height > vh - MARGIN && above >= MARGIN) top = above;
    top = Math.max(MARGIN, Math.min(top, vh - height - MARGIN));
    // Right edges line up: the buttons that open these sit at the right of their row.
    let left = box.right - width;
    left = Math.max(MARGIN, Math.min(left, vw - width - MARGIN));
    el.style.left = `${Math.round(left)}px`;
    el.style.top = `${Math.round(top)}px`;
  }

  #keepOnScreen() {
    const el = this.el;
    const vw = document.documentElement.clientWidth;
    const vh = document.documentElement.clientHeight;
    const top = Math.max(MARGIN, Math.min(el.offsetTop, vh - el.offsetHeight - MARGIN));
    const left = Math.max(MARGIN, Math.min(el.offsetLeft, vw - el.offsetWidth - MARGIN));
    el.style.top = `${Math.round(top)}px`;
    el.style.left = `${Math.round(left)}px`;
  }

  #arrowKeys(event) {
    if (event.key !== "ArrowDown" && event.key !== "ArrowUp") return;
    const items = [...this.el.querySelectorAll("[role=menuitem]:not([disabled])")];
    if (!items.length) return;
    event.preventDefault();
    const at = items.indexOf(this.doc.activeElement);
    const step = event.key === "ArrowDown" ? 1 : -1;
    items[(at + step + items.length) % items.length].focus();
  }
}
