// Entry point: the server says which page this is (body[data-page]); render it into #app.
import { auditPage } from "./audit.js";
import { builderPage } from "./builder/index.js";
import { connectionsPage } from "./connections.js";
import { clear, h } from "./dom.js";
import { flowsPage } from "./flows.js";
import { runPage, runsPage } from "./runs.js";
import { usersPage } from "./users.js";

const pages = {
  flows: (root) => flowsPage(root),
  builder: (root) => builderPage(root, document.body.dataset.flowId || null),
  connections: (root) => connectionsPage(root),
  runs: (root) => runsPage(root),
  run: (root) => runPage(root, document.body.dataset.runId),
  audit: (root) => auditPage(root),
  users: (root) => usersPage(root),
};

async function start() {
  const root = document.getElementById("app");
  const page = pages[document.body.dataset.page];
  try {
    await page(root);
    root.dataset.ready = "true";
  } catch (error) {
    clear(root, h("div", { class: "banner banner-error", role: "alert" },
      h("strong", {}, "This page could not load: "), error.message || String(error)));
    root.dataset.ready = "error";
  }
}

start();
