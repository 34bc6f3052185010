#!/usr/bin/env bash
# Regenerates the README's before/after gallery with the current models: the held-out
# content photos (onnx/styles/content_heldout/, never used in training) restyled by a few
# demo influencers and by demo user ana's interest blend, through `stylecast generate` (the
# same pipeline as POST /v1/generate) on a fresh database loaded by `stylecast demo`.
# Writes small JPEGs to docs/gallery/ and the table between the gallery markers of README.md.
#
#   bash scripts/gallery.sh          (after ./scripts/run.sh or ./scripts/test.sh set things up)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source scripts/services.sh
prepare
cargo build --quiet --bin stylecast
export BIN="${BIN:-${CARGO_TARGET_DIR:-target}/debug/stylecast}"

render() {
  local out=docs/gallery user=ana size=160
  mkdir -p "$out"
  rm -f "$out"/*.jpg
  local influencers=(noir_nadia golden_gabe neon_nova ink_iris)
  local header="| photo | original |" rule="|---|---|"
  for i in "${influencers[@]}"; do header+=" ${i} |"; rule+="---|"; done
  header+=" ${user}'s blend |"; rule+="---|"
  local rows=""
  for photo in onnx/styles/content_heldout/*.png; do
    local name
    name="$(basename "$photo" .png)"
    # Strength 0 returns the photo itself, resized the same way as the outputs.
    "$BIN" generate --photo "$photo" --user "$user" --strength 0 --size "$size" --out "$out/${name}.jpg" >/dev/null
    local row="| ${name} | ![${name}](gallery/${name}.jpg) |"
    for i in "${influencers[@]}"; do
      "$BIN" generate --photo "$photo" --user "$user" --influencer "$i" --size "$size" --out "$out/${name}-${i}.jpg" >/dev/null
      row+=" ![${name} as ${i}](gallery/${name}-${i}.jpg) |"
    done
    "$BIN" generate --photo "$photo" --user "$user" --size "$size" --out "$out/${name}-${user}.jpg"
    row+=" ![${name} in ${user}'s blend](gallery/${name}-${user}.jpg) |"
    rows+="${row}"$'\n'
  done
  local model
  model="$(curl -fsS "${STYLECAST_URL}/readyz" | python3 -c 'import json,sys; m=json.load(sys.stdin)["models"]; print(", ".join(f"{a} {b}" for a, b in m.get("versions", [])))')"
  printf '%s\n%s\n%s\n_Made by `scripts/gallery.sh` with %s; %s._\n' "$header" "$rule" "$rows" "$model" \
    "$(du -ch "$out"/*.jpg | tail -n1 | cut -f1) in all" >test-artifacts/gallery-table.md
}
export -f render
bash scripts/with-service.sh gallery bash -c render

python3 - <<'PY'
import pathlib, re
readme = pathlib.Path("README.md")
table = pathlib.Path("test-artifacts/gallery-table.md").read_text().replace("](gallery/", "](docs/gallery/")
text = readme.read_text()
start, end = "<!-- gallery:start -->", "<!-- gallery:end -->"
if start not in text or end not in text:
    raise SystemExit("README.md lacks the gallery markers")
text = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: f"{start}\n{table}{end}", text, flags=re.S)
readme.write_text(text)
PY
echo "gallery: $(ls docs/gallery/*.jpg | wc -l) images, $(du -ch docs/gallery/*.jpg | tail -n1 | cut -f1) in docs/gallery/; README.md updated" >&2
