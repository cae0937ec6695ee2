"""Transfer-learning methods, one folder or file each.

- `bpa/`: distributed backpropagation by basic probability assignment (`BPAModel`).
- `domain_adaptation/`: unsupervised domain adaptation: DAN (MK-MMD), DANN (gradient reversal),
  CDAN (conditional adversarial) and MCC (minimum class confusion).
- `spottune/`: SpotTune, a per-input choice between frozen and fine-tuned blocks.
- `peft/`: parameter-efficient fine-tuning: LoRA, DoRA and BitFit, adapter files, merging.
- `feature_extraction.py`: frozen features + a linear softmax or SVM classifier.
- `distillation.py`: knowledge distillation on `keras.distillation`.
- `layer_transfer/`: the retained-levels sweep of Gutstein, Fuentes and Freudenthal (2008).
"""
