# Typical mistakes in the activations notebook. Each block replaces one answer cell; "fails" lists the
# test cells that this mistake must fail, and it must pass all the others.

# %% relu | fails: relu_input_unchanged
def relu(x):
    """Zeroes the negatives in place: the caller's array is changed."""
    x = np.asarray(x)
    x[x < 0] = 0
    return x

# %% tanh | fails: tanh_stable
def tanh(x):
    """The textbook formula: e^1000 overflows and inf / inf is nan."""
    return (np.exp(x) - np.exp(-x)) / (np.exp(x) + np.exp(-x))
