package kir

// Walk calls expr on every expression of ss (operands before the
// expressions that use them are not guaranteed: parents come first) and
// store on every store, descending into loops and conditionals. Either
// callback may be nil.
func Walk(ss []Stmt, expr func(Expr), store func(*Store)) {
	for _, s := range ss {
		switch s := s.(type) {
		case *Decl:
			WalkExpr(s.Init, expr)
		case *Assign:
			WalkExpr(s.Val, expr)
		case *Store:
			if store != nil {
				store(s)
			}
			WalkExpr(s.Index, expr)
			WalkExpr(s.Val, expr)
		case *StoreI8:
			WalkExpr(s.Off, expr)
			WalkExpr(s.Val, expr)
		case *StoreBF16:
			WalkExpr(s.Off, expr)
			WalkExpr(s.Val, expr)
		case *Prefetch:
			WalkExpr(s.Off, expr)
		case *For:
			WalkExpr(s.Lo, expr)
			WalkExpr(s.Hi, expr)
			Walk(s.Body, expr, store)
		case *IfGreater:
			WalkExpr(s.X, expr)
			WalkExpr(s.Y, expr)
			Walk(s.Then, expr, store)
		}
	}
}

// WalkExpr calls f on e and every expression inside it, parents first.
func WalkExpr(e Expr, f func(Expr)) {
	if f == nil {
		return
	}
	f(e)
	switch e := e.(type) {
	case *Load:
		WalkExpr(e.Index, f)
	case *LoadQ:
		WalkExpr(e.Off, f)
	case *DotI8:
		WalkExpr(e.WOff, f)
		WalkExpr(e.XOff, f)
	case *Scales:
		WalkExpr(e.Off, f)
	case *DotCols:
		WalkExpr(e.WOff, f)
		WalkExpr(e.XOff, f)
	case *DotBF16:
		WalkExpr(e.Acc, f)
		WalkExpr(e.WOff, f)
		WalkExpr(e.XOff, f)
	case *ColScales:
		WalkExpr(e.Off, f)
	case *ColBits:
		WalkExpr(e.Off, f)
	case *Halves:
		WalkExpr(e.Lo, f)
		WalkExpr(e.Hi, f)
	case *Bin:
		WalkExpr(e.A, f)
		WalkExpr(e.B, f)
	case *FMA:
		WalkExpr(e.A, f)
		WalkExpr(e.B, f)
		WalkExpr(e.C, f)
	case *Call:
		WalkExpr(e.Arg, f)
	case *Broadcast:
		WalkExpr(e.X, f)
	case *HSum:
		WalkExpr(e.X, f)
	case *HMax:
		WalkExpr(e.X, f)
	case *HSums:
		for _, x := range e.Xs {
			WalkExpr(x, f)
		}
	case *ToF32:
		WalkExpr(e.X, f)
	case *Select:
		WalkExpr(e.X, f)
		WalkExpr(e.Y, f)
		WalkExpr(e.A, f)
		WalkExpr(e.B, f)
	}
}

// WalkBuffers calls f on every buffer ss reads or writes, as often as it
// is used.
func WalkBuffers(ss []Stmt, f func(*Buffer)) {
	Walk(ss, func(e Expr) {
		switch e := e.(type) {
		case *Load:
			f(e.Buf)
		case *LoadQ:
			f(e.Buf)
		case *DotI8:
			f(e.W)
			f(e.X)
		case *Scales:
			f(e.W)
		case *DotCols:
			f(e.W)
			f(e.X)
		case *DotBF16:
			f(e.W)
			f(e.X)
		case *ColScales:
			f(e.W)
		case *ColBits:
			f(e.W)
		}
	}, func(s *Store) { f(s.Buf) })
	walkStmts(ss, func(s Stmt) {
		switch s := s.(type) {
		case *StoreI8:
			f(s.Buf)
		case *StoreBF16:
			f(s.Buf)
		case *Prefetch:
			f(s.Buf)
		}
	})
}

// walkStmts calls f on every statement of ss, descending into loops and
// conditionals.
func walkStmts(ss []Stmt, f func(Stmt)) {
	for _, s := range ss {
		f(s)
		switch s := s.(type) {
		case *For:
			walkStmts(s.Body, f)
		case *IfGreater:
			walkStmts(s.Then, f)
		}
	}
}
