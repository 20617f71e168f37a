# MovieLens rating prediction as a Kaggle-style competition.
# Every target is a thin call of `python -m cfblend` (see scripts/cfblend.py and src/cfblend/cli.py).

# Python: the project's own .venv, made (or updated when requirements.txt changes) on first use by
# scripts/ensure_venv.sh. PYTHON=... uses an environment of your own instead (then `make install`).
VENV    ?= .venv
ifeq ($(origin PYTHON),undefined)
PYTHON  := $(VENV)/bin/python
ENV     := env
else
ENV     :=
endif
DATASET ?= ml-100k
SPLIT   ?=
INPUT   ?= input
OUT     ?= output
K       ?= 5
SEED    ?= 42
DEVICE  ?= auto
MODEL   ?= dot
MODELS  ?=
SET     ?=
DATA_DIR ?=
SUB     ?= $(OUT)/submission.csv
FORCE   ?=
BLEND   ?= auto
COMP    ?=
SCALE   ?= 1.0
BENCH_DATASETS ?= ml-100k,ml-1m
BENCH_SPLITS ?=
ITEM    ?=
TRIALS  ?= 20
FOLDS   ?= 1
STORAGE ?=
SAVE    ?=
KERNEL_ID ?=
PAIRS   ?=
EXECUTOR ?= local
SCHEDULER ?=
WORKERS ?= 0

# User values reach the commands through the environment and are quoted there ("$$SET"), never pasted
# into the command line, so a value with spaces or quotes stays one argument and runs nothing.
export DATASET SPLIT INPUT OUT K SEED DEVICE MODEL MODELS SET DATA_DIR SUB BLEND COMP SCALE BENCH_DATASETS BENCH_SPLITS \
       TRIALS FOLDS STORAGE ITEM KERNEL_ID PAIRS EXECUTOR SCHEDULER WORKERS
CLI = $(PYTHON) scripts/cfblend.py --dataset "$$DATASET" --split "$$SPLIT" --input "$$INPUT" --output "$$OUT" \
      --seed "$$SEED"
OVERWRITE = $(if $(FORCE),--overwrite,)
EXEC = --executor "$$EXECUTOR" --scheduler "$$SCHEDULER" --workers "$$WORKERS"

.PHONY: env kaggle-env help install predict embeddings data synth competition folds train tune models score blend similar report all ablation kernel kernel-push submit screenshot bench test lint clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

env:  ## make or update the project's .venv from requirements.txt (every target below does this first)
	@VENV="$(VENV)" scripts/ensure_venv.sh

kaggle-env:  ## a second environment with Kaggle's image versions (requirements-kaggle.txt) in .venv-kaggle: the kernel test runs there too
	@VENV=.venv-kaggle REQUIREMENTS=requirements-kaggle.txt NO_PACKAGE=1 scripts/ensure_venv.sh

install:  ## with PYTHON=<yours>: install the pinned requirements and the package into that Python
	$(PYTHON) -m pip install -r requirements.txt
	$(PYTHON) -m pip install --no-deps --no-build-isolation -e .

data: $(ENV)  ## obtain and verify DATASET into input/ (DATA_DIR=<folder or zip> to use your copy)
	$(CLI) data $(if $(DATA_DIR),--data-dir "$$DATA_DIR",)

synth: $(ENV)  ## a synthetic ML-25M-shaped set -> input/synth-25m (SCALE=0.1 for a tenth); then DATASET=synth-25m
	$(CLI) synth --scale "$$SCALE"

competition: $(ENV)  ## write the competition files for DATASET and SPLIT
	$(CLI) competition

folds: $(ENV)  ## K-fold assignment of the train rows -> OUT/folds.csv
	$(CLI) folds --k "$$K" $(OVERWRITE)

train: $(ENV)  ## cross-validated training of MODEL (SET="key=value ...", FORCE=1 to replace)
	$(CLI) train --model "$$MODEL" --device "$$DEVICE" --set "$$SET" $(OVERWRITE) $(EXEC)

tune: $(ENV)  ## Optuna study of MODEL's config: TRIALS=20 FOLDS=1 STORAGE=<url> SAVE=1 (writes models/tuned.yaml)
	$(CLI) tune --model "$$MODEL" --trials "$$TRIALS" --folds "$$FOLDS" --storage "$$STORAGE" --set "$$SET" \
	    $(if $(SAVE),--save,)

score: $(ENV)  ## Public/Private RMSE of SUB
	$(CLI) score --sub "$$SUB"

blend: $(ENV)  ## blend the trained models' OOF predictions (MODELS; default all; BLEND=auto|linear|hill|fwls|stack) -> OUT/submission.csv
	$(CLI) blend --models "$$MODELS" --method "$$BLEND"

report: $(ENV)  ## leaderboard of every trained model -> OUT/leaderboard.{csv,md}
	$(CLI) report

all: $(ENV)  ## data, competition, folds, every model (MODELS: names and/or a list, fast|full; default: the dataset's), blend, report
	$(CLI) all --models "$$MODELS" --k "$$K" --set "$$SET" --method "$$BLEND" --device "$$DEVICE" \
	    --data-dir "$$DATA_DIR" $(OVERWRITE) $(EXEC)

models: $(ENV)  ## list every registered model with its config keys, types, defaults and ranges (for SET)
	$(CLI) models

predict: $(ENV)  ## PAIRS=<csv of user_id,item_id[,timestamp]>: each member's and the blend's prediction -> OUT/predictions.csv
	$(CLI) predict --pairs "$$PAIRS"

embeddings: $(ENV)  ## dot's and nn's learned user/item embeddings by raw id and fold -> OUT/embeddings/*.parquet
	$(CLI) embeddings

similar: $(ENV)  ## the movies nearest to ITEM="<title or id>" by the trained models' item factors
	$(CLI) similar --item "$$ITEM"

ablation: $(ENV)  ## nn with and without side features -> OUT/ablation_side_features.md
	$(CLI) train --model nn,nn_ids --device "$$DEVICE" --set "$$SET" $(OVERWRITE)
	$(CLI) report

kernel: $(ENV)  ## build kernel/ (kernel-metadata.json + one self-contained script); KERNEL_ID=owner/slug sets the id
	$(CLI) kernel --out kernel --kernel-id "$$KERNEL_ID"

kernel-push: $(ENV) kernel  ## kaggle kernels push -p kernel (needs Kaggle credentials)
	$(CLI) kernel-push --out kernel

submit: $(ENV)  ## kaggle competitions submit COMP=<slug> -f OUT/submission.csv (needs Kaggle credentials)
	$(CLI) submit --comp "$$COMP"

screenshot: $(ENV)  ## render OUT/report.html in headless Chromium -> OUT/report.png
	$(PYTHON) scripts/screenshot_report.py "$$OUT/report.html" "$$OUT/report.png"

bench: $(ENV)  ## our models (MODELS, default full) vs Surprise (pip install -r bench/requirements-bench.txt first; K=10: ten folds) -> bench/results/
	$(PYTHON) bench/run.py --datasets "$$BENCH_DATASETS" --splits "$$BENCH_SPLITS" --k "$$K" --models "$$MODELS"

test: $(ENV)  ## lint, then the test suite
	$(PYTHON) -m ruff check src tests scripts bench
	$(PYTHON) -m pytest -q

lint: $(ENV)  ## ruff only
	$(PYTHON) -m ruff check src tests scripts bench

clean: $(ENV)  ## remove the artifact folder OUT (keeps input/); refuses a folder holding anything else
	$(CLI) clean
