"""Optimised dataset perturbations (Zietlow, Rolínek & Martius, ICML 2021; thesis §4.2.3–4.3.3).

    folder.py    the perturbation folder: its format, reading `perturbation.yaml`, the checks the study validator
                 runs (cheap: no torch, no numpy)
    network.py   the manipulation network m(w) (torch): the disentanglement_lib deconv decoder whose input MLP has
                 a one-neuron hidden layer, fed the ground-truth factors; tanh output, so ‖m‖∞ ≤ 1
    train.py     `make_perturbation(job)`: the Ray task of `orthosweep perturb` (trains m against frozen encoders of
                 the most entangled and most disentangled restarts, writes the folder)

The datasets that use a folder (`perturbation: <folder>`) or uniform noise (`noise: ε`) are in
`workers/data/perturbed.py`; the driver side of the command is `sweep/perturb.py`.
"""
