#!/usr/bin/env bash
# Regenerates the README's before/after gallery with the current models: the held-out
# content photos (onnx/styles/content_heldout/, never used in training) restyled by a few
# demo influencers, by demo user ana's interest blend, by looks the model never saw (held-out
# references from onnx/heldout.py, registered as influencers through the API) and by blends of
# two influencers at 0.25, 0.5 and 0.75, all through `stylecast generate` (the same pipeline
# as POST /v1/generate) on a fresh database loaded by `stylecast demo`.
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

# The held-out references (needs `python onnx/fetch_assets.py --eval` for their photos).
python_check="${STYLECAST_ONNX_VENV:-onnx/.venv-check}/bin/python"
"$python_check" onnx/fetch_assets.py --eval >/dev/null
"$python_check" onnx/heldout.py --write test-artifacts/heldout-refs >/dev/null

render() {
  local out=docs/gallery user=ana size=160
  mkdir -p "$out"
  rm -f "$out"/*.jpg
  local unseen=(photo_flower halftone teal_orange bw_film)
  for look in "${unseen[@]}"; do
    curl -fsS -XPUT "${STYLECAST_URL}/v1/influencers/unseen_${look}" -H "Authorization: Bearer ${STYLECAST_ADMIN_KEY}" \
      -H 'content-type: application/json' -d "{\"display_name\": \"${look}\", \"consent\": true}" >/dev/null
    curl -fsS -XPOST "${STYLECAST_URL}/v1/influencers/unseen_${look}/photos" -H "Authorization: Bearer ${STYLECAST_ADMIN_KEY}" \
      -H 'content-type: image/png' --data-binary "@test-artifacts/heldout-refs/${look}.png" >/dev/null
  done
  local influencers=(noir_nadia golden_gabe neon_nova ink_iris)
  local header="| photo | original |" rule="|---|---|"
  for i in "${influencers[@]}"; do header+=" ${i} |"; rule+="---|"; done
  header+=" ${user}'s blend |"; rule+="---|"
  local rows="" unseen_rows="" blend_rows=""
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
    local urow="| ${name} | ![${name}](gallery/${name}.jpg) |"
    for look in "${unseen[@]}"; do
      "$BIN" generate --photo "$photo" --user "$user" --influencer "unseen_${look}" --size "$size" --out "$out/${name}-unseen-${look}.jpg" >/dev/null
      urow+=" ![${name} in the unseen look ${look}](gallery/${name}-unseen-${look}.jpg) |"
    done
    unseen_rows+="${urow}"$'\n'
    local brow="| ${name} |"
    for t in 0 25 50 75 100; do
      "$BIN" generate --photo "$photo" --user "$user" --mix "noir_nadia=$((100 - t)),golden_gabe=${t}" --size "$size" --out "$out/${name}-blend-${t}.jpg" >/dev/null
      brow+=" ![${name}, golden_gabe at ${t} %](gallery/${name}-blend-${t}.jpg) |"
    done
    blend_rows+="${brow}"$'\n'
  done
  local unseen_header="| photo | original |" unseen_rule="|---|---|"
  for look in "${unseen[@]}"; do unseen_header+=" unseen: ${look} |"; unseen_rule+="---|"; done
  local model
  model="$(curl -fsS "${STYLECAST_URL}/readyz" | python3 -c 'import json,sys; m=json.load(sys.stdin)["models"]; print(", ".join(f"{a} {b}" for a, b in m.get("versions", [])))')"
  {
    printf 'Demo influencers:\n\n%s\n%s\n%s\n' "$header" "$rule" "$rows"
    printf 'Looks the model never saw (the held-out references of onnx/heldout.py: an ordinary photo, a halftone print, a teal-orange grade, black-and-white film), each uploaded as an influencer'"'"'s one photo:\n\n%s\n%s\n%s\n' \
      "$unseen_header" "$unseen_rule" "$unseen_rows"
    printf 'Blends, noir_nadia → golden_gabe (`mix`), golden_gabe'"'"'s share:\n\n| photo | 0 | 0.25 | 0.5 | 0.75 | 1 |\n|---|---|---|---|---|---|\n%s\n' "$blend_rows"
    printf '_Made by `scripts/gallery.sh` with %s; %s._\n' "$model" "$(du -ch "$out"/*.jpg | tail -n1 | cut -f1) in all"
  } >test-artifacts/gallery-table.md
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
