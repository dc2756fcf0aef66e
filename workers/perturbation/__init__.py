"""Training optimised dataset perturbations (Zietlow, Rolínek & Martius, ICML 2021; thesis §4.2.3–4.3.3).

    train.py     `make_perturbation(job)`: the Ray task of `orthosweep perturb` (trains m against frozen encoders of
                 the most entangled and most disentangled restarts, writes the folder)

What the training writes and what the datasets read is in the data layer: the folder format and its checks
(`workers/data/perturbation_folder.py`), the manipulation network m(w) (`workers/data/perturbation_network.py`)
and the datasets that use a folder (`perturbation: <folder>`) or uniform noise (`noise: ε`)
(`workers/data/perturbed.py`). The driver side of the command is `sweep/perturb.py`.
"""
