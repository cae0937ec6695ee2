"""Transfer-learning methods, one folder or file each.

- `bpa/`: distributed backpropagation by basic probability assignment (`BPAModel`).
- `feature_extraction.py`: frozen features + a linear softmax or SVM classifier.
- `distillation.py`: knowledge distillation on `keras.distillation`.
- `layer_transfer.py`: the retained-levels sweep of Gutstein, Fuentes and Freudenthal (2008).
"""
