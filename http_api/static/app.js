"use strict";
// The page talks to the same API as any client: POST /v1/bills, then GET /v1/bills/{n}?wait=.
const keyInput = document.getElementById("api-key");
keyInput.value = localStorage.getItem("billstream-api-key") || "";
keyInput.addEventListener("change", () => localStorage.setItem("billstream-api-key", keyInput.value.trim()));

const FIELD_NAMES = ["company", "date", "address", "total"];
const WORDS = {
  UNSUPPORTED_FORMAT: "this file is not a format billstream reads",
  CORRUPT_IMAGE: "this file is damaged and cannot be read",
  IMAGE_TOO_LARGE: "this file is too large",
  TOO_MANY_PAGES: "this document has too many pages",
  ENCRYPTED_DOCUMENT: "this PDF is password-protected",
  EMPTY_DOCUMENT: "this document has no pages",
};

function headers(extra) {
  const h = Object.assign({}, extra || {});
  const key = keyInput.value.trim();
  if (key) h["Authorization"] = "Bearer " + key;
  return h;
}

async function errorText(response) {
  try {
    const body = await response.json();
    return body.message || body.code || ("HTTP " + response.status);
  } catch (e) {
    return "HTTP " + response.status;
  }
}

function card(file) {
  const node = document.getElementById("bill-card").content.firstElementChild.cloneNode(true);
  node.querySelector(".name").textContent = file.name;
  document.getElementById("bills").prepend(node);
  return node;
}

function setStatus(node, text, kind) {
  const status = node.querySelector(".status");
  status.textContent = text;
  status.className = "status " + (kind || "");
  node.dataset.status = kind || text;
}

function showError(node, text) {
  const p = node.querySelector(".error");
  p.textContent = text;
  p.hidden = false;
}

async function submit(file) {
  const node = card(file);
  setStatus(node, "uploading");
  let response;
  try {
    response = await fetch("/v1/bills", {
      method: "POST", body: file,
      headers: headers({"Content-Type": file.type || "application/octet-stream", "X-Filename": encodeURIComponent(file.name)}),
    });
  } catch (e) {
    setStatus(node, "not sent", "refused");
    showError(node, "the server could not be reached: " + e.message);
    return;
  }
  if (response.status !== 202) {
    setStatus(node, "refused", "refused");
    showError(node, await errorText(response));
    return;
  }
  const order = (await response.json()).orders[0].order_number;
  node.dataset.order = order;
  setStatus(node, "recognising");
  await follow(node, order);
}

async function follow(node, order) {
  for (;;) {
    let response;
    try {
      response = await fetch("/v1/bills/" + encodeURIComponent(order) + "?wait=25", {headers: headers()});
    } catch (e) {
      await new Promise((done) => setTimeout(done, 2000));  // the server is away: try again shortly
      continue;
    }
    if (response.status === 200) return show(node, order, await response.json());
    if (response.status === 202 || response.status === 404) continue;  // 404: accepted moments ago
    if (response.status === 429) {
      await new Promise((done) => setTimeout(done, 1000 * Number(response.headers.get("Retry-After") || 1)));
      continue;
    }
    setStatus(node, "error", "failed");
    showError(node, await errorText(response));
    return;
  }
}

function show(node, order, result) {
  const recognised = result.status === "RECOGNIZED";
  setStatus(node, recognised ? (result.cached ? "recognized (cached)" : "recognized") : "failed",
            recognised ? "recognized" : "failed");
  if (!recognised) {
    showError(node, (WORDS[result.error_code] || result.error_code) + (result.error_message ? ": " + result.error_message : ""));
  }
  node.querySelector(".body").hidden = false;
  const fields = node.querySelector(".fields tbody");
  const details = {};
  for (const d of result.key_field_details || []) details[d.name] = d;
  for (const name of FIELD_NAMES) {
    const row = fields.insertRow();
    row.insertCell().textContent = name;
    const d = details[name];
    const printed = (result.key_fields || {})[name] || "";
    row.insertCell().textContent = printed + (d && d.value && d.value !== printed ? "  (" + d.value + (d.currency ? " " + d.currency : "") + ")" : "");
  }
  const lines = node.querySelector(".lines");
  for (const line of result.lines || []) {
    const item = document.createElement("li");
    item.textContent = line.text;
    lines.appendChild(item);
  }
  const json = JSON.stringify(result, null, 2);
  node.querySelector(".json").textContent = json;
  node.querySelector(".copy").addEventListener("click", () => navigator.clipboard.writeText(json));
  if (result.image_sha256) drawImage(node, order, result);
}

async function drawImage(node, order, result) {
  const note = node.querySelector(".note");
  const response = await fetch("/v1/bills/" + encodeURIComponent(order) + "/image", {headers: headers()});
  if (!response.ok) {
    note.textContent = "the image could not be loaded: " + await errorText(response);
    note.hidden = false;
    return;
  }
  const blob = await response.blob();
  if (blob.type === "application/pdf") {
    note.textContent = "a PDF: its text is on the right; the preview shows images only";
    note.hidden = false;
    node.querySelector("canvas").hidden = true;
    return;
  }
  const bitmap = await createImageBitmap(blob);
  const degrees = ((result.page_rotations || [])[0] || 0) % 360;
  const canvas = node.querySelector("canvas");
  const turned = degrees === 90 || degrees === 270;
  canvas.width = turned ? bitmap.height : bitmap.width;
  canvas.height = turned ? bitmap.width : bitmap.height;
  const ctx = canvas.getContext("2d");
  ctx.save();
  if (degrees === 90) ctx.translate(canvas.width, 0);
  if (degrees === 180) ctx.translate(canvas.width, canvas.height);
  if (degrees === 270) ctx.translate(0, canvas.height);
  ctx.rotate(degrees * Math.PI / 180);  // boxes are on the page as it was turned to be read
  ctx.drawImage(bitmap, 0, 0);
  ctx.restore();
  ctx.lineWidth = Math.max(2, canvas.width / 400);
  ctx.strokeStyle = "rgba(220, 30, 30, 0.85)";
  let drawn = 0;
  for (const line of result.lines || []) {
    if ((line.page || 0) !== 0 || line.box.length !== 8) continue;
    ctx.beginPath();
    ctx.moveTo(line.box[0], line.box[1]);
    for (let i = 2; i < 8; i += 2) ctx.lineTo(line.box[i], line.box[i + 1]);
    ctx.closePath();
    ctx.stroke();
    drawn += 1;
  }
  canvas.dataset.boxes = String(drawn);
}

function take(files) {
  for (const file of files) submit(file);
}

const drop = document.getElementById("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); take(e.dataTransfer.files); });
document.getElementById("files").addEventListener("change", (e) => { take(e.target.files); e.target.value = ""; });
