# Answers to add_bias(features), written the way students write them.

# %% correct: DataFrame.assign
def add_bias(features):
    return features.assign(bias=1)

# %% correct: concat with a Series of float ones on the same index
def add_bias(features):
    ones = pd.Series(1.0, index=features.index, name="bias")
    return pd.concat([features, ones], axis=1)

# %% correct: insert at the last position
def add_bias(features):
    with_bias = features.copy()
    with_bias.insert(len(with_bias.columns), "bias", np.ones(len(with_bias)))
    return with_bias

# %% correct: .loc on a deep copy
def add_bias(features):
    with_bias = features.copy(deep=True)
    with_bias.loc[:, "bias"] = 1
    return with_bias

# %% wrong: the lesson's code changes the caller's frame | fails: add_bias_input_unchanged
def add_bias(features):
    features["bias"] = 1
    return features

# %% wrong: the bias column first | fails: add_bias_columns, add_bias_hidden
def add_bias(features):
    with_bias = features.copy()
    with_bias.insert(0, "bias", 1)
    return with_bias

# %% wrong: concat with a Series of default index misaligns shuffled rows | fails: add_bias_hidden
def add_bias(features):
    return pd.concat([features, pd.Series(np.ones(len(features)), name="bias")], axis=1)

# %% wrong: a numpy array instead of a DataFrame | fails: add_bias_columns, add_bias_hidden
def add_bias(features):
    return np.column_stack([features, np.ones(len(features))])

# %% wrong: the column is called "Bias" | fails: add_bias_columns, add_bias_hidden
def add_bias(features):
    return features.assign(Bias=1)

# %% wrong: a column of zeros | fails: add_bias_columns, add_bias_hidden
def add_bias(features):
    with_bias = features.copy()
    with_bias["bias"] = 0
    return with_bias
