"""Text rules with no model behind them: facts and figures, declines and the house style, sentences, safe text."""
