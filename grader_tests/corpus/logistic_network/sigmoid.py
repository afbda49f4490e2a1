# Answers to sigmoid(z), written the way students write them.

# %% correct: scipy.special.expit
def sigmoid(z):
    from scipy.special import expit

    return expit(z)

# %% correct: two branches with np.where-style masks, never exp of a large positive number
def sigmoid(z):
    z = np.asarray(z, dtype=float)
    result = np.empty_like(z)
    positive = z >= 0
    result[positive] = 1 / (1 + np.exp(-z[positive]))
    exp_z = np.exp(z[~positive])
    result[~positive] = exp_z / (1 + exp_z)
    return result if result.ndim else result.item()

# %% correct: through tanh, which never overflows
def sigmoid(z):
    return 0.5 * (1 + np.tanh(0.5 * np.asarray(z, dtype=float)))

# %% correct: the lesson's formula on clipped input
def sigmoid(z):
    return 1 / (1 + np.exp(-np.clip(z, -500, 500)))

# %% correct: logaddexp in the other direction
def sigmoid(z):
    return np.exp(z - np.logaddexp(0, z))

# %% wrong: the lesson's formula overflows at -1000 | fails: sigmoid_stable
def sigmoid(z):
    return 1 / (1 + np.exp(-z))

# %% wrong: the sign of the exponent | fails: sigmoid_values, sigmoid_hidden, sigmoid_properties, sigmoid_stable
def sigmoid(z):
    return 1 / (1 + np.exp(z))

# %% wrong: math.exp works on single numbers only | fails: sigmoid_values, sigmoid_shapes, sigmoid_hidden, sigmoid_input_unchanged, sigmoid_properties, sigmoid_stable
def sigmoid(z):
    import math

    return 1 / (1 + math.exp(-z))

# %% wrong: returns labels instead of probabilities | fails: sigmoid_values, sigmoid_hidden, sigmoid_properties
def sigmoid(z):
    return np.where(np.asarray(z) >= 0, 1.0, 0.0)

# %% wrong: e^(-2z), as in tanh | fails: sigmoid_values, sigmoid_hidden, sigmoid_stable
def sigmoid(z):
    return 1 / (1 + np.exp(-2 * z))

# %% wrong: computes in the caller's array | fails: sigmoid_input_unchanged
def sigmoid(z):
    if isinstance(z, np.ndarray) and z.dtype.kind == "f":
        np.negative(z, out=z)
        np.logaddexp(0.0, z, out=z)
        np.negative(z, out=z)
        return np.exp(z, out=z)
    return np.exp(-np.logaddexp(0.0, -np.asarray(z, dtype=float)))
