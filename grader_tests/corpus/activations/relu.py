# Answers to relu(x), written the way students write them.

# %% correct: np.where
def relu(x):
    return np.where(x > 0, x, 0)

# %% correct: multiply by a boolean mask
def relu(x):
    return x * (x > 0)

# %% correct: np.clip
def relu(x):
    return np.clip(x, 0, None)

# %% correct: the lesson's lambda
relu = lambda x: np.maximum(0, x)  # noqa: E731

# %% correct: np.maximum with a float zero
def relu(x):
    return np.maximum(x, 0.0)

# %% wrong: zeroes the negatives in place | fails: relu_input_unchanged
def relu(x):
    x = np.asarray(x)
    x[x < 0] = 0
    return x

# %% wrong: Python's max does not work element by element | fails: relu_values, relu_shapes, relu_input_unchanged, relu_hidden, relu_properties
def relu(x):
    return max(0, x)

# %% wrong: the absolute value | fails: relu_values, relu_shapes, relu_hidden, relu_properties
def relu(x):
    return np.abs(x)

# %% wrong: the threshold at 1 | fails: relu_values, relu_hidden, relu_properties
def relu(x):
    return np.where(x > 1, x, 0)

# %% wrong: a leaky ReLU | fails: relu_values, relu_shapes, relu_hidden, relu_properties
def relu(x):
    return np.where(x > 0, x, 0.01 * x)

# %% wrong: a list comprehension, for 1-D input only | fails: relu_shapes, relu_hidden
def relu(x):
    return [max(0, value) for value in x]
