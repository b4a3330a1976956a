"""The feature browser on a tiny trained model and a tiny SAE: what it collects (activations,
ablation effects, neighbours), the CLI's refusals, and the site in headless Chromium (it loads, a
feature page renders, the search finds a feature). Chromium is driven as in
tests/claims/test_report_browser.py; those tests skip where it is absent."""

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from imo.cli import main
from imo.data.corpora import load_corpus
from imo.data.tokenizer import ByteTokenizer
from imo.inspect import browser
from imo.inspect import sae as S
from imo.runs.store import RunStore
from imo.train.checkpoint import load_model

HOOK = "blocks.1.hook_resid_post"
CHROMIUM = Path(shutil.which("chromium") or "/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000"]


def windows(n=6, T=32):
    val = np.asarray(load_corpus("python-docs").val)
    return torch.from_numpy(val[: n * T].astype(np.int64).reshape(n, T))


def loaded(rid, sid):
    from safetensors.torch import load_file

    store = RunStore.open()
    model, _ = load_model(store.run_dir(rid))
    run = store.get(sid)
    return model, S.load(load_file(run["artifacts"]["sae"]), run["config"]["sae"])


def test_collect_matches_the_sae_and_ablation_is_causal(lm_and_sae):
    model, sae = loaded(*lm_and_sae)
    w = windows()
    cfg = browser.BrowseConfig(examples=3, bins=2, left=4, right=2, ablate=3, logits=4, neighbours=3)
    data = browser.collect(model, ByteTokenizer(), sae, HOOK, w, cfg)
    codes, clean = browser.feature_acts(model, sae, HOOK, w)
    assert codes.shape == (6, 32, 64) and clean.shape == (6, 31)
    feats = data["features"]
    assert len(feats) == 64 and data["tokens"] == 6 * 32
    assert data["dead"] == int(((codes > 0).sum((0, 1)) == 0).sum())
    alive = [f for f in feats if f["top"]]
    assert alive
    for f in alive[:5]:
        i = f["id"]
        assert f["density"] == pytest.approx(float((codes[..., i] > 0).float().mean()))
        best = f["top"][0]
        assert best["acts"][best["pos"]] == pytest.approx(float(codes[..., i].max()), abs=1e-3)
        assert best["tokens"][best["pos"]] == browser.token_text(ByteTokenizer(), int(w.reshape(-1)[codes[..., i].argmax()]))
        assert f["neighbours"][0][0] != i and len(f["neighbours"]) == 3
        assert all(b["lo"] <= ex["acts"][ex["pos"]] + 1e-3 and ex["acts"][ex["pos"]] <= b["hi"] + 1e-3
                   for b in f["bins"] for ex in b["examples"])
    # ± logits: the decoder row read through the final norm and the unembedding
    from imo.inspect.lens import direction_logits
    for f in (feats[0], feats[-1]):
        with torch.no_grad():
            dl = direction_logits(model, sae.W_dec[f["id"]])
        assert f["pos_logits"][0][0] == browser.token_text(ByteTokenizer(), int(dl.argmax()))
        assert f["neg_logits"][0] == [browser.token_text(ByteTokenizer(), int(dl.argmin())), round(float(dl.min()), 3)]
    # ablation: no effect on tokens predicted before the feature first fires in the window, an
    # exact zero where it never fires, and some effect after it fires
    i = alive[0]["id"]
    eff = browser.ablation_effect(model, sae, HOOK, i, w, clean)
    fires = codes[..., i] > 0
    for r in range(6):
        if not fires[r].any():
            assert torch.all(eff[r] == 0)
            continue
        first = int(fires[r].float().argmax())
        assert torch.allclose(eff[r, :first], torch.zeros(first), atol=1e-6)
        assert eff[r, first:].abs().max() > 0


def test_shown_ablation_effects_equal_the_full_window_ones_and_can_be_limited(lm_and_sae):
    # collect() stops each ablation's forward pass after the last token shown; on a causal model
    # the shown tokens' effects are the full window's
    model, sae = loaded(*lm_and_sae)
    w = windows()
    cfg = browser.BrowseConfig(examples=3, bins=2, left=4, right=2, ablate=2, logits=4, neighbours=3)
    feats = browser.collect(model, ByteTokenizer(), sae, HOOK, w, cfg)["features"]
    _, clean = browser.feature_acts(model, sae, HOOK, w)
    checked = 0
    for f in [f for f in feats if f["top"]][:6]:
        full = browser.ablation_effect(model, sae, HOOK, f["id"], w, clean).numpy()
        for k, ex in enumerate(f["top"]):
            assert ("effect" in ex) == (k < 2)
            for j, v in enumerate(ex.get("effect", [])):
                t = ex["start"] + j   # the window position of the j-th token shown
                if t == 0:
                    assert v is None
                else:
                    assert v == pytest.approx(float(full[ex["window"], t - 1]), abs=2e-4)
                    checked += 1
    assert checked > 0
    limited = browser.collect(model, ByteTokenizer(), sae, HOOK, w,
                              browser.BrowseConfig(examples=3, bins=2, left=4, right=2, ablate=2, ablate_features=10))
    assert any(ex.get("effect") for f in limited["features"] for ex in f["top"])
    for f in limited["features"]:
        assert all(("effect" in ex) == (f["id"] < 10 and k < 2) for k, ex in enumerate(f["top"]))


def page_dom(tmp_path: Path, page: Path, fragment: str, name: str, allow: str = "") -> str:
    cmd = [str(CHROMIUM), *FLAGS, f"--user-data-dir={tmp_path / f'profile-{name}'}", "--dump-dom",
           page.as_uri() + fragment]
    res = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    console = [line for line in res.stderr.splitlines() if ("CONSOLE" in line or "Uncaught" in line)
               and not (allow and allow in line)]
    assert not console, console  # the page's script logs nothing unless it fails
    return res.stdout


def test_cli_refuses_bad_input(lm_and_sae, tmp_path, capsys):
    rid, sid = lm_and_sae
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    for args, msg in [([sid[:8], "-o", str(busy)], "is not empty"),
                      ([rid[:8], "-o", str(tmp_path / "a")], "not an SAE"),
                      ([sid[:8], "-o", str(tmp_path / "b"), "--examples", "0"], "must be positive"),
                      (["nope", "-o", str(tmp_path / "c")], "no run matches")]:
        with pytest.raises(SystemExit) as e:
            main(["inspect", "browse", *args, "-q"])
        err = capsys.readouterr().err
        assert e.value.code == 2 and msg in err and "Traceback" not in err, err
    assert sorted(p.name for p in busy.iterdir()) == ["keep.txt"]
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Chromium: apt-get install chromium")
def test_site_in_chromium(lm_and_sae, tmp_path, capsys, monkeypatch):
    _, sid = lm_and_sae
    monkeypatch.setattr(browser, "CHUNK", 16)  # four data files, so a page loads a later one
    out = tmp_path / "site"
    with pytest.raises(SystemExit) as e:
        main(["inspect", "browse", sid[:8], "-o", str(out), "--windows", "6", "--context", "32",
              "--examples", "3", "--ablate", "3", "-q"])
    assert (e.value.code or 0) == 0, capsys.readouterr().err
    assert "64 features over 192 tokens" in capsys.readouterr().out
    assert sorted(p.name for p in (out / "data").iterdir()) == ["chunk-000.js", "chunk-001.js", "chunk-002.js",
                                                            "chunk-003.js", "index.js"]
    index = json.loads((out / "data" / "index.js").read_text().split(" = ", 1)[1].rstrip(";\n"))
    rows = index["features"]

    # the list, and nothing broken
    dom = page_dom(tmp_path, out / "index.html", "", "list")
    assert 'data-ready="list"' in dom and dom.count("<li data-id=") == 64

    # a feature page from a later chunk (loaded on demand) renders its parts
    alive = [r for r in rows if r[1] > 0 and r[0] >= 32]
    f = alive[0][0]
    dom = page_dom(tmp_path, out / "index.html", f"#f={f}", "feature")
    assert 'data-ready="feature"' in dom and f'data-feature="{f}"' in dom
    for part in ("Density among all features", "Top logits", "Nearest features", "Top activations", "Quantile"):
        assert part in dom, part
    assert dom.count('<div class="pair">') >= 2 and "<svg" in dom
    assert "ablated" in dom  # the ablation line of a top example

    # search: a token from one feature's label finds exactly the features whose label or logits hold it
    label = next(r[3] for r in rows if r[3] != "dead")
    q = next(t for t in label.split(" · ") if t.strip())
    expect = {r[0] for r in rows if q.lower() in (r[3] + "\n" + r[4]).lower()}
    dom = page_dom(tmp_path, out / "index.html", "#q=" + q, "search")
    found = {int(i) for i in re.findall(r'<li data-id="(\d+)"', dom)}
    assert found == expect and 0 < len(found) < 64
    assert f"{len(expect)} of 64 features" in html.unescape(dom)
    dom = page_dom(tmp_path, out / "index.html", "#q=17", "search-id")
    assert re.findall(r'<li data-id="(\d+)"', dom)[0] == "17"

    # --force writes over the old site
    with pytest.raises(SystemExit) as e:
        main(["inspect", "browse", sid[:8], "-o", str(out), "--windows", "4", "--context", "32",
              "--ablate", "0", "--force", "-q"])
    assert (e.value.code or 0) == 0
    assert "over 128 tokens" in capsys.readouterr().out


def test_collect_on_a_llama_with_a_bpe_tokenizer():
    # the llama family shares the hook points; a subword token is shown as its text
    pytest.importorskip("tokenizers")
    import string

    from imo.data.tokenizer import BPETokenizer, _byte_level_alphabet
    from imo.model import ModelConfig
    from imo.model.families import build_model

    sym = {b: c for c, b in _byte_level_alphabet().items()}
    merges = [f"{sym[32]} {a}" for a in string.ascii_lowercase] + ["e r", "t h"]
    tok = BPETokenizer.from_vocab([sym[b] for b in range(256)] + [m.replace(" ", "") for m in merges], merges)
    torch.manual_seed(0)
    model = build_model(ModelConfig(family="llama", vocab_size=tok.vocab_size, n_layer=2, n_head=4, n_kv_head=2,
                                    n_embd=32, ffn_hidden=64, context_length=32, pos="rope", bias=False)).eval()
    sae = S.build(32, S.SAEConfig(latents=16, k=2))
    ids = tok.encode("the other thing is here " * 20)[:4 * 16]
    w = torch.tensor(ids).reshape(4, 16)
    data = browser.collect(model, tok, sae, "blocks.0.hook_resid_post", w,
                           browser.BrowseConfig(examples=2, bins=2, left=3, right=1, ablate=2, logits=3))
    shown = {t for f in data["features"] for ex in f["top"] for t in ex["tokens"]}
    assert shown and shown <= {browser.token_text(tok, i) for i in ids}
    assert " t" in shown or "th" in shown or "er" in shown  # multi-byte tokens appear as their text


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Chromium: apt-get install chromium")
def test_live_pages_in_chromium(lm_and_sae, tmp_path, capsys):
    # the custom-text page and the steer button, from file:// against `imo serve`'s routes, and
    # the page's message when no server answers
    from urllib.parse import quote

    from imo.engine.decode import Engine
    from imo.engine.server import ServerThread, create_app
    from imo.inspect.routes import add_inspect_routes, load_sae_run

    rid, sid = lm_and_sae
    out = tmp_path / "site"
    with pytest.raises(SystemExit) as e:
        main(["inspect", "browse", sid[:8], "-o", str(out), "--windows", "4", "--context", "32",
              "--examples", "2", "--ablate", "0", "-q"])
    assert (e.value.code or 0) == 0, capsys.readouterr().err
    model, _ = loaded(rid, sid)
    app = create_app(Engine(model), rid)
    sae, info = load_sae_run(sid, rid)
    ins = add_inspect_routes(app, model, ByteTokenizer(), sae, info)
    text = "def main(x):\n    return x"
    with ServerThread(app) as url:
        dom = html.unescape(page_dom(tmp_path, out / "index.html", f"#live&server={url}&text={quote(text)}", "live"))
        assert 'data-ready="live"' in dom and 'data-live="text"' in dom, dom[-3000:]
        want = ins.text(text)
        line = dom.split('id="live-tokens"', 1)[1].split("</div>", 1)[0]
        assert line.count("<span") == len(text) == len(want["tokens"])
        assert f"{len(text)} tokens, {len(want['top'])} features fired." in dom
        assert re.findall(r'<tr data-id="(\d+)"', dom) == [str(j) for j, _, _ in want["top"]]

        f = next(j for j, _, _ in want["top"])
        dom = html.unescape(page_dom(tmp_path, out / "index.html",
                                     f"#f={f}&server={url}&steer={quote('def ')}&value=40", "steer"))
        assert 'data-live="steer"' in dom, dom[-3000:]
        got = ins.steer("def ", f, 40.0, 48)
        assert got["steered"] != got["baseline"]  # a large clamp changes the greedy text
        for part in ("baseline", "steered"):
            shown = dom.split(f'class="pair {part}"', 1)[1].split("</div></div>", 1)[0]
            assert shown.endswith(got[part]) or got[part] in shown
    # no server: the live page says so, and the static pages are unaffected
    dom = html.unescape(page_dom(tmp_path, out / "index.html", "#live&server=http://127.0.0.1:9&text=x",
                                 "down", allow="127.0.0.1:9"))
    assert 'data-live="error"' in dom and "No server reachable at http://127.0.0.1:9" in dom
