// The builder's testing survives a reload: the test data and each card's last Test result
// (or outputs typed for testing) are kept on the server for the flow, as shown (redacted),
// until the flow is deleted. A new flow keeps them from its first save on.
import { enc, get, put } from "../api.js";
import { toast } from "../dom.js";
import { walk } from "./state.js";
import { may } from "../role.js";

export async function restoreTests(state) {
  if (!state.view) return;
  let kept;
  try { kept = await get(`/flows/${enc(state.view.id)}/test-state`); } catch { return; } // testing starts afresh
  if (kept.sample) state.sampleText = kept.sample;
  const results = kept.results || {};
  for (const step of walk(state)) if (results[step.id]) state.testResults.set(step, results[step.id]);
}

export function keepTests(state) {
  if (!state.view) return;
  clearTimeout(state.keepTimer);
  if (!may("builder")) return; // a viewer's page keeps nothing
  state.keepTimer = setTimeout(async () => {
    const results = {};
    for (const step of walk(state)) {
      const last = state.testResults.get(step);
      if (last) results[step.id] = last;
    }
    try {
      await put(`/flows/${enc(state.view.id)}/test-state`, { sample: state.sampleText, results });
      state.root.dataset.testsKept = String(Date.now());
    } catch (error) {
      toast(`The test results could not be kept: ${error.message}`, "error");
    }
  }, 300);
}
