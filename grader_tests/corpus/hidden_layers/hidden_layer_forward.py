# Answers to hidden_layer_forward(features, coefs, intercepts), written the way students write them.

# %% correct: its own sigmoid, np.dot and flatten
def hidden_layer_forward(features, coefs, intercepts):
    def logistic(z):
        return 1 / (1 + np.exp(-z))

    activation = np.asarray(features)
    for i in range(len(coefs)):
        activation = logistic(np.dot(activation, coefs[i]) + intercepts[i])
    return activation.flatten()

# %% correct: recursion, one layer per call
def hidden_layer_forward(features, coefs, intercepts):
    layer = sigmoid(np.asarray(features) @ coefs[0] + intercepts[0])
    if len(coefs) == 1:
        return layer[:, 0]
    return hidden_layer_forward(layer, coefs[1:], intercepts[1:])

# %% correct: functools.reduce over the layers
def hidden_layer_forward(features, coefs, intercepts):
    from functools import reduce

    layers = zip(coefs, intercepts, strict=True)
    return reduce(lambda x, layer: sigmoid(x @ layer[0] + layer[1]), layers, np.asarray(features))[:, 0]

# %% correct: the lesson's two stages, written out, then the rest in a loop
def hidden_layer_forward(features, coefs, intercepts):
    l1 = sigmoid(np.dot(features, coefs[0]) + intercepts[0])
    output = l1
    for weights, bias in zip(coefs[1:], intercepts[1:], strict=True):
        output = sigmoid(np.dot(output, weights) + bias)
    return np.ravel(output)

# %% wrong: returns the output column (n, 1) | fails: forward_shape
def hidden_layer_forward(features, coefs, intercepts):
    layer = np.asarray(features, dtype=float)
    for weights, bias in zip(coefs, intercepts, strict=True):
        layer = sigmoid(layer @ weights + bias)
    return layer

# %% wrong: forgets the intercepts | fails: forward_matches_predict_proba, forward_hidden
def hidden_layer_forward(features, coefs, intercepts):
    layer = np.asarray(features, dtype=float)
    for weights in coefs:
        layer = sigmoid(layer @ weights)
    return layer.ravel()

# %% wrong: ReLU in the hidden layers of a logistic network | fails: forward_matches_predict_proba, forward_hidden
def hidden_layer_forward(features, coefs, intercepts):
    layer = np.asarray(features, dtype=float)
    for weights, bias in zip(coefs[:-1], intercepts[:-1], strict=True):
        layer = np.maximum(0, layer @ weights + bias)
    return sigmoid(layer @ coefs[-1] + intercepts[-1]).ravel()

# %% wrong: no sigmoid on the output layer | fails: forward_matches_predict_proba, forward_hidden
def hidden_layer_forward(features, coefs, intercepts):
    layer = np.asarray(features, dtype=float)
    for weights, bias in zip(coefs[:-1], intercepts[:-1], strict=True):
        layer = sigmoid(layer @ weights + bias)
    return (layer @ coefs[-1] + intercepts[-1]).ravel()

# %% wrong: only the first and the last layer, right for one hidden layer only | fails: forward_hidden
def hidden_layer_forward(features, coefs, intercepts):
    l1 = sigmoid(np.dot(features, coefs[0]) + intercepts[0])
    return sigmoid(np.dot(l1, coefs[-1]) + intercepts[-1]).ravel()
