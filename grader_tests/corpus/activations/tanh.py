# Answers to tanh(x), written the way students write them.

# %% correct: the formula rewritten with e^(-2|x|), which never overflows
def tanh(x):
    decay = np.exp(-2 * np.abs(x))
    return np.sign(x) * (1 - decay) / (1 + decay)

# %% correct: through the sigmoid, 2 sigma(2x) - 1
def tanh(x):
    from scipy.special import expit

    return 2 * expit(2 * np.asarray(x, dtype=float)) - 1

# %% correct: math.tanh, vectorised
def tanh(x):
    import math

    return np.vectorize(math.tanh, otypes=[float])(x)

# %% correct: np.tanh in a lambda
tanh = lambda x: np.tanh(x)  # noqa: E731

# %% wrong: the textbook formula overflows at 1000 | fails: tanh_stable
def tanh(x):
    return (np.exp(x) - np.exp(-x)) / (np.exp(x) + np.exp(-x))

# %% wrong: the circular tangent | fails: tanh_values, tanh_hidden, tanh_properties, tanh_stable
def tanh(x):
    return np.tan(x)

# %% wrong: sinh instead of tanh | fails: tanh_values, tanh_hidden, tanh_properties, tanh_stable
def tanh(x):
    return (np.exp(x) - np.exp(-x)) / 2

# %% wrong: the sigmoid instead of tanh | fails: tanh_values, tanh_hidden, tanh_properties, tanh_stable
def tanh(x):
    return 1 / (1 + np.exp(-x))

# %% wrong: writes the result into the caller's array | fails: tanh_input_unchanged
def tanh(x):
    x = np.asarray(x, dtype=float)
    np.tanh(x, out=x)
    return x

# %% wrong: a hard clip to [-1, 1] | fails: tanh_values, tanh_hidden
def tanh(x):
    return np.clip(x, -1, 1)
