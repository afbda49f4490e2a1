# Answers to feedforward(features, weights), written the way students write them.

# %% correct: np.dot and ravel of the (n, 1) result
def feedforward(features, weights):
    return np.dot(features, weights.T).ravel()

# %% correct: elementwise product summed along the rows
def feedforward(features, weights):
    return (np.asarray(features) * np.ravel(weights)).sum(axis=1)

# %% correct: DataFrame.dot, which returns a Series
def feedforward(features, weights):
    return pd.DataFrame(features).dot(np.ravel(weights))

# %% correct: the @ operator, with a debug print to stderr
def feedforward(features, weights):
    import sys

    print(f"feedforward: {np.shape(features)} @ {np.shape(weights)}", file=sys.stderr)
    return np.asarray(features, dtype=float) @ np.ravel(weights)

# %% wrong: the lesson's code returns a column (n, 1) for a row of weights | fails: feedforward_row_weights_shape
def feedforward(features, weights):
    predictions = np.dot(features, weights.T)
    return predictions

# %% wrong: hard-codes the visible example | fails: feedforward_shape, feedforward_hidden, feedforward_row_weights_shape
def feedforward(features, weights):
    return np.array([2.61, 3.52, 1.92])

# %% wrong: sums over the wrong axis | fails: feedforward_lesson_example, feedforward_shape, feedforward_hidden, feedforward_row_weights_shape
def feedforward(features, weights):
    return (np.asarray(features) * np.ravel(weights)).sum(axis=0)

# %% wrong: leaves out the last column and its weight | fails: feedforward_lesson_example, feedforward_hidden
def feedforward(features, weights):
    return np.asarray(features)[:, :-1] @ np.ravel(weights)[:-1]

# %% wrong: rounds the predictions to two decimals | fails: feedforward_hidden
def feedforward(features, weights):
    return np.round(np.asarray(features) @ np.ravel(weights), 2)
