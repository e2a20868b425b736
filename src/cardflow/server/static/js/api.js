// The web app talks to the same /api/v1 routes as any client: the session cookie says who,
// the X-CSRF-Token header (read from the page, unreadable to other sites) proves it is us.

const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";
export const csrfToken = csrf;

export class ApiError extends Error {
  constructor(status, error) {
    super(error?.message || `The server answered ${status}.`);
    this.status = status;
    this.type = error?.type || "http_error";
    this.field = error?.field || null;
    // every problem, when the server found several at once ({field, message} each)
    this.problems = error?.errors || [{ field: this.field, message: this.message }];
    // the error's other members (e.g. missing_connections when importing a flow)
    this.details = error && typeof error === "object" ? error : {};
  }
}

export async function api(method, path, body, extraHeaders = {}) {
  const headers = { Accept: "application/json", ...extraHeaders };
  const init = { method, headers, credentials: "same-origin" };
  if (method !== "GET") headers["X-CSRF-Token"] = csrf;
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(`/api/v1${path}`, init);
  } catch {
    throw new ApiError(0, { type: "network", message: "cardflow did not answer. Is it still running?" });
  }
  if (response.status === 401) {
    window.location.assign("/login");
    throw new ApiError(401, { type: "unauthorized", message: "Your session has ended." });
  }
  if (response.status === 204) return null;
  const type = response.headers.get("content-type") || "";
  const data = type.includes("json") ? await response.json() : await response.text();
  if (!response.ok) throw new ApiError(response.status, data?.error);
  return data;
}

export const get = (path) => api("GET", path);
export const post = (path, body) => api("POST", path, body ?? {});
// Answered at once: the run goes on, its page follows it.
export const postAsync = (path, body) => api("POST", path, body ?? {}, { Prefer: "respond-async" });
export const put = (path, body) => api("PUT", path, body);
export const patch = (path, body) => api("PATCH", path, body);
export const del = (path) => api("DELETE", path);
export const enc = encodeURIComponent;
