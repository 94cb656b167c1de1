"""`python -m lit_mnist sweep`: the post's "alchemy" of hyperparameters, searched with Optuna."""
