//go:build race

package jit

// raceDetector slows the property tests about tenfold; they run fewer cases.
const raceDetector = true
