"""Fault and bad-input probes, as a whole: kills at random moments, concurrent runs, nonsense input.

Each line printed is ``probe | outcome``; the tests in tests/test_promises.py hold each promise at
its exact step, this script checks them together the way a user would meet them:
``python scripts/probe_faults.py``.
"""
import hashlib, json, os, random, signal, subprocess, sys, tempfile, time
from pathlib import Path
import numpy as np
from PIL import Image
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import synthetic_cell

T = Path(tempfile.mkdtemp(prefix="probes20-"))
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
def cli(*a, wait=True):
    cmd = [sys.executable, "-m", "bloodcell", *map(str, a)]
    if not wait:
        return subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    p = subprocess.run(cmd, env=ENV, capture_output=True, text=True)
    return p.returncode, (p.stderr.strip().splitlines() or [""])[-1][:160]
def sha(folder):
    return hashlib.sha256(b"".join((Path(folder) / f).read_bytes() for f in ("config.json", "model.weights.h5"))).hexdigest()[:12]
def report(probe, outcome):
    print(f"{probe} | {outcome}", flush=True)

data = T / "data"
for c, name in enumerate(["lymphocyte", "neutrophil", "monocyte"]):
    (data / name).mkdir(parents=True)
    for i in range(60):
        Image.fromarray(synthetic_cell(40, 100 * c + i)).save(data / name / f"{i}.png")
tiny = ["--model", "microcell", "--input-size", "32", "--head-epochs", "1", "--finetune-epochs", "0"]
out = T / "trained"
code, line = cli("train", data, *tiny, "--out", out)
assert code == 0, line
before = sha(out)
code, line = cli("train", data, *tiny, "--out", out, "--workdir", T / "EMPTY.work", "--resume")
report("1 --resume, empty workdir, over a trained model", f"exit {code}, model unchanged: {sha(out) == before}; {line}")
code, line = cli("train", data, *tiny, "--out", out)
report("1 train over a trained model without --overwrite", f"exit {code}, model unchanged: {sha(out) == before}; {line}")

first = cli("train", data, *tiny[:4], "--head-epochs", "8", "--finetune-epochs", "0", "--out", T / "race", wait=False)
while not (T / ".race.bloodcell-lock").exists():
    time.sleep(0.2)
code, line = cli("train", data, *tiny, "--out", T / "race")
first.wait()
report("2 two train runs into one --out", f"second: exit {code}; {line}; first: exit {first.returncode}")

big = T / "big"
for c in ("lymphocyte", "neutrophil"):
    (big / c).mkdir(parents=True)
    for i in range(1500):
        Image.fromarray(synthetic_cell(48, i + 5000 * (c == "neutrophil"))).save(big / c / f"{i}.png")
outcomes = []
for trial in range(6):
    dest = T / f"clean{trial}"
    p = cli("clean", big, "--out", dest, wait=False)
    time.sleep(random.uniform(8, 30))
    p.send_signal(signal.SIGKILL); p.wait()
    left = [q.name for q in T.iterdir() if q.name.startswith(f"clean{trial}")]
    n = sum(1 for _ in dest.rglob("*.png")) if dest.exists() else 0
    outcomes.append("absent" if not dest.exists() else f"whole ({n} images)")
report("3 clean killed at random moments (6 kills)", ", ".join(outcomes))

import bloodcell
clf = bloodcell.Classifier(bloodcell.build_model("microcell", input_size=32), name="tiny")
results = []
for trial in range(6):
    dest = T / "saved"
    clf.save_pretrained(dest) if not dest.exists() else None
    a = sha(dest)
    code = f"import bloodcell; c=bloodcell.Classifier(bloodcell.build_model('mnv3s', input_size=64), name='B'); c.save_pretrained({str(dest)!r})"
    p = subprocess.Popen([sys.executable, "-c", code], env=ENV, stderr=subprocess.DEVNULL)
    time.sleep(random.uniform(6, 12)); p.send_signal(signal.SIGKILL); p.wait()
    try:
        after = bloodcell.load_classifier(dest).name
    except Exception as e:
        after = f"error: {e}"
    stale = [q.name for q in dest.parent.iterdir() if q.name.startswith(".tmp") or "staging" in q.name]
    results.append(f"{after}{' +stale ' + str(stale) if stale else ''}")
report("4 save_pretrained over a model killed at random moments (6 kills)", "; ".join(results))

x = np.random.randint(0, 255, (4, 32, 32, 3), np.uint8)
def err(f):
    try:
        f(); return "accepted"
    except Exception as e:
        return f"{type(e).__name__}: {str(e)[:110]}"
for bs in (-1, 0, 2.5):
    report(f"5 predict_proba(batch_size={bs})", err(lambda: clf.predict_proba(x, batch_size=bs)))
one = T / "one"; (one / "basophil").mkdir(parents=True)
for i in range(20): Image.fromarray(synthetic_cell(40, i)).save(one / "basophil" / f"{i}.png")
code, line = cli("train", one, *tiny, "--out", T / "onecls")
report("6 train on one class", f"exit {code}; {line}")
f = np.random.rand(2, 32, 32, 3).astype(np.float32); f[0, 0, 0, 0] = 1.02
report("7 float images 0..1 with one pixel at 1.02", err(lambda: clf.predict(f)))
report("7 0x0 image", err(lambda: clf.predict(np.zeros((1, 0, 0, 3), np.uint8))))
report("7 1x1 image", err(lambda: clf.predict(np.zeros((1, 1, 1, 3), np.uint8))))
report("7 nested list", err(lambda: clf.predict([[1, 2], [3]])))
report("7 dict", err(lambda: clf.predict({"a": 1})))
for key, value in (("format_version", None), ("class_names", None), ("weights_file", 123), ("metrics", [1, 2]),
                   ("format_version", "abc"), ("architecture", 123), ("class_names", "abcdefgh"), ("class_names", list(range(8)))):
    dest = T / f"cfg_{key}_{hash(str(value)) & 0xffff}"
    clf.save_pretrained(dest)
    cfg = json.loads((dest / "config.json").read_text()); cfg[key] = value
    (dest / "config.json").write_text(json.dumps(cfg))
    code, line = cli("predict", data / "lymphocyte" / "0.png", "--model", dest)
    report(f"8 config.json {key}={json.dumps(value)}", f"exit {code}; {line.replace(str(T), '<tmp>')}")
from bloodcell.outliers import find_outliers
report("10 find_outliers on an empty batch", err(lambda: find_outliers(np.zeros((0, 32, 32, 3), np.uint8))))
report("10 Trainer.fit with label -1", err(lambda: bloodcell.Trainer("microcell", input_size=32, head_epochs=1, finetune_epochs=0, patience=None, verbose=0).fit(bloodcell.data.Dataset(x, np.array([0, 1, -1, 2])))))
