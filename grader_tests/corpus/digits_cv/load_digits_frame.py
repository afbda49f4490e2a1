# Answers to load_digits_frame(), written the way students write them.

# %% correct: as_frame=True, with scikit-learn's pixel column names
def load_digits_frame():
    digits = load_digits(as_frame=True)
    return digits.data, digits.target

# %% correct: return_X_y
def load_digits_frame():
    pixels, labels = load_digits(return_X_y=True)
    return pd.DataFrame(pixels), pd.Series(labels)

# %% correct: named columns and a named Series
def load_digits_frame():
    digits = load_digits()
    features = pd.DataFrame(digits.data, columns=[f"pixel{i}" for i in range(64)])
    return features, pd.Series(digits.target, name="label")

# %% wrong: the raw numpy arrays | fails: load_digits_frame_types
def load_digits_frame():
    digits = load_digits()
    return digits["data"], digits["target"]

# %% wrong: the first image instead of the data | fails: load_digits_frame_types, load_digits_frame_hidden
def load_digits_frame():
    digits = load_digits()
    return pd.DataFrame(digits.images[0]), pd.Series(digits.target)

# %% wrong: the labels as a one-column DataFrame | fails: load_digits_frame_types
def load_digits_frame():
    digits = load_digits()
    return pd.DataFrame(digits.data), pd.DataFrame(digits.target)

# %% wrong: labels and features swapped | fails: load_digits_frame_types, load_digits_frame_hidden
def load_digits_frame():
    digits = load_digits()
    return pd.Series(digits.target), pd.DataFrame(digits.data)

# %% wrong: pixels scaled to [0, 1] | fails: load_digits_frame_hidden
def load_digits_frame():
    digits = load_digits()
    return pd.DataFrame(digits.data / 16), pd.Series(digits.target)
