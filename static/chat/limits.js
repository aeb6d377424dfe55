/**
 * The protocol's numbers, as the server states them in `welcome.limits`. The values
 * here are only what the page assumes before its first welcome; learn() replaces them.
 */
export const limits = {
  body_max_chars: 500,
  frame_max_bytes: 8192,
  tip_body_max: 200,
  tip_max: 100000,
  notice_body_max: 500,
  reason_max: 200,
  title_max: 200,
  mute_max_seconds: 1209600,
  slow_mode_max_seconds: 120,
  excerpt_chars: 80,
  roster_page_max: 200,
  client_id_max: 64,
  close_codes: {
    normal: 1000,
    kicked: 4000,
    forbidden: 4403,
    not_found: 4404,
    heartbeat: 4408,
    too_far_behind: 4409,
    flooding: 4429,
    service_restart: 1012,
  },
};

/** Take what the server says; keep the assumed value for anything it leaves out. */
export function learn(stated) {
  if (!stated || typeof stated !== "object") return limits;
  for (const [key, value] of Object.entries(stated)) {
    if (key === "close_codes" && value && typeof value === "object") {
      for (const [name, code] of Object.entries(value)) if (Number.isInteger(code)) limits.close_codes[name] = code;
    } else if (key in limits && Number.isFinite(value)) {
      limits[key] = value;
    }
  }
  return limits;
}
