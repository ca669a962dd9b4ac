#!/bin/bash
# One device call: candidates of the default trained side by side on one GPU (scripts/gpu_train.py).
# Prepare here:  python scripts/gpu_pack.py ../shared/data/pbc96 .gpu/pbc96.npz
#                wheels of keras (this project's version), namex and optree for the machine's Python in .whl/
#                (see the device tool's README), .gpu/ and .whl/ listed in .git/info/exclude
# Run there:     SET=first|polish bash scripts/gpu_candidates.sh   (carry .gpu and .whl; S=seconds of training,
#                default 330; W=augmentation workers a run, default 4)
# Back here:     python scripts/gpu_import.py OUT/NAME.weights.h5 OUT/NAME.json runs/gpu/NAME [--init-source mnv3s.pbc96]
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site KERAS_BACKEND=jax XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader; nproc
cat > /tmp/preflight.py <<'PY'
import jax, keras, numpy as np
assert jax.default_backend() == "gpu", jax.default_backend()
m = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3), keras.layers.BatchNormalization(),
                      keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2, activation="softmax")])
m.compile(keras.optimizers.AdamW(1e-3), "categorical_crossentropy")
m.fit(np.zeros((4, 8, 8, 3), np.uint8), np.eye(2)[[0, 1, 0, 1]], verbose=0)
print("preflight ok:", jax.__version__, keras.__version__, jax.devices())
PY
if python3 /tmp/preflight.py > /tmp/pf.log 2>&1; then tail -1 /tmp/pf.log; else
  tail -5 /tmp/pf.log; echo "Keras on JAX does not train on this machine's GPU: nothing trained"; exit 1; fi
S=${S:-330}
run() { python3 scripts/gpu_train.py --data .gpu/pbc96.npz --out $OUT --seconds $S --workers $W "$@" 2>&1 | grep -v -e UserWarning -e data_adapter >> $OUT/log.txt; }
W=${W:-4}
DEFAULT=bloodcell/_weights/mnv3s.pbc96/model.weights.h5
case ${SET:-first} in
  first)  # stop 29: from random init, from the default at 3e-4, and stronger domain augmentation
    run --name scratch &
    run --name fromdefault --init $DEFAULT --lr 3e-4 &
    run --name strong --stain-rate 0.8 --magnify 2.2 --magnify-rate 0.5 --blur-rate 0.3 & ;;
  polish)  # stop 30: the default polished at low learning rates with more corruptions (for weight averaging)
    run --name polish-5e5-c50 --init $DEFAULT --lr 5e-5 --corrupt-rate 0.5 --seed 1 &
    run --name polish-1e4-c50 --init $DEFAULT --lr 1e-4 --corrupt-rate 0.5 --seed 2 &
    run --name polish-5e5-c35 --init $DEFAULT --lr 5e-5 --seed 3 &
    run --name polish-2e5-c60 --init $DEFAULT --lr 2e-5 --corrupt-rate 0.6 --seed 4 & ;;
  *) echo "SET=$SET: expected first or polish"; exit 2 ;;
esac
(sleep 90; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader; uptime) >> $OUT/log.txt &
wait
tail -c 6000 $OUT/log.txt
